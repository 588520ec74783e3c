-- Headless Ardour 7 session steps for scripts/ardour-render.sh, run by `ardour7-lua` (luasession).
--
--   ardour7-lua ardour-render.lua create  DIR NAME RATE WITH_PLUGIN(1|0)
--   ardour7-lua ardour-render.lua place   DIR NAME WITH_PLUGIN(1|0|armed)
--   ardour7-lua ardour-render.lua inspect DIR NAME WITH_PLUGIN(1|0|armed)
--
-- create:  a new session with one stereo audio track "Programme" and, with WITH_PLUGIN=1,
--          Sluice Meter (VST3) inserted pre-fader on it; saved and closed.
-- place:   re-opens the session (Ardour restores the plugin from its saved state), puts a copy
--          of the whole-file region "programme" (added to the session file by
--          `ardour-render.py inject`) on the track at 0 with fades and envelope off; saved, closed.
-- inspect: re-opens the session and checks (without saving) that the track carries exactly what
--          is expected: a live Sluice Meter VST3 plugin insert (not an unknown/stub processor)
--          with its default parameters, or no plugin at all for the control session.
-- "armed" (place, inspect): the plugin session with Sluice Meter's Record arm switched on by the
--          place step (ardour-render.sh --take only; the take goes to $HOME/Sluice Takes).
--
-- Each step prints "LUA-STEP-OK <step>" as its last line on success; any failed check raises a
-- Lua error (ardour7-lua then exits non-zero). Nothing here is copied from Ardour's sources.

local SLUICE_UID = "536C756963654D65746572506C756731"

local step, dir, name = arg[1], arg[2], arg[3]

local function fail(msg)
	error("ardour-render.lua " .. tostring(step) .. ": " .. msg, 0)
end

local function check(cond, msg)
	if not cond then fail(msg) end
end

local function the_track()
	local found = nil
	for r in Session:get_tracks():iter() do
		if r:name() == "Programme" then found = r end
	end
	check(found ~= nil, "no track named Programme in the session")
	return found
end

-- Every processor on the route, as {name, is_plugin, type, uid, creator, active}.
local function processors(route)
	local list = {}
	local i = 0
	while true do
		local p = route:nth_processor(i)
		if p:isnil() then break end
		local e = { name = p:display_name(), active = p:active(), is_plugin = false }
		local pi = p:to_insert()
		if not pi:isnil() then
			local pl = pi:plugin(0)
			e.is_plugin = true
			e.type = ARDOUR.PluginType.name(pi:type())
			e.uid = pl:unique_id()
			e.creator = pl:get_info().creator
			e.plugin_name = pl:name()
		end
		list[#list + 1] = e
		i = i + 1
	end
	return list
end

local function print_processors(route)
	for i, e in ipairs(processors(route)) do
		if e.is_plugin then
			print(string.format("  processor %d: %s [plugin insert: %s uid=%s creator=%s active=%s]",
				i - 1, e.name, e.type, e.uid, e.creator, tostring(e.active)))
		else
			print(string.format("  processor %d: %s", i - 1, e.name))
		end
	end
end

-- The plugin inserts on the route (PluginInserts only; unknown processors are not inserts).
local function plugin_inserts(route)
	local out = {}
	for _, e in ipairs(processors(route)) do
		if e.is_plugin then out[#out + 1] = e end
	end
	return out
end

local function check_plugins(route, with_plugin, armed)
	local ins = plugin_inserts(route)
	if with_plugin then
		check(#ins == 1, "expected exactly one plugin insert on Programme, found " .. #ins)
		local e = ins[1]
		check(e.type == "VST3", "the plugin insert is " .. tostring(e.type) .. ", not VST3")
		check(e.uid == SLUICE_UID, "the plugin's unique id is " .. tostring(e.uid) .. ", not Sluice Meter's " .. SLUICE_UID)
		check(e.plugin_name == "Sluice Meter", "the plugin is named " .. tostring(e.plugin_name))
		check(e.active, "the Sluice Meter insert is not active")
		-- its parameters: every one printed; record arm must be off (a take would be written)
		local proc = route:nth_plugin(0)
		local pl = proc:to_insert():plugin(0)
		local n = 0
		for j = 0, pl:parameter_count() - 1 do
			if pl:parameter_is_control(j) and pl:parameter_is_input(j) then
				local label = pl:parameter_label(j)
				local v = ARDOUR.LuaAPI.get_processor_param(proc, n, true)
				print(string.format("  Sluice Meter parameter %d '%s' = %s", n, label, tostring(v)))
				if label == "Record arm" then
					local want = armed and 1 or 0
					check(v == want, "Record arm is " .. tostring(v) .. ", expected " .. want)
				end
				n = n + 1
			end
		end
		-- Record arm, Target, Custom target, Custom ceiling, Bypass, Listen to reference,
		-- Reference, Reference follows transport
		check(n == 8, "Sluice Meter exposes " .. n .. " input parameters, expected 8")
	else
		check(#ins == 0, "the control session has " .. #ins .. " plugin insert(s) on Programme, expected none")
	end
end

-- The track's routing: inputs connected to nothing (the track plays from disk), output k to
-- the master bus's input k and nowhere else.
local function check_routing(route)
	local master = Session:master_out()
	check(master ~= nil and not master:isnil(), "the session has no master bus")
	for k = 0, 1 do
		local inp, out = route:input():audio(k), route:output():audio(k)
		local dest = master:input():audio(k):name()
		check(not inp:connected(), "Programme input " .. (k + 1) .. " is connected")
		check(out:connected_to(dest), "Programme output " .. (k + 1) .. " is not connected to " .. dest)
	end
end

local function route_track(route)
	-- Ardour connects a new track's ports from a background thread: wait for it (up to 5 s)
	-- so that it cannot connect anything after the explicit routing below.
	for _ = 1, 50 do
		if route:output():audio(0):connected() and route:output():audio(1):connected() then break end
		ARDOUR.LuaAPI.usleep(100000)
	end
	route:input():disconnect_all(nil)
	route:output():disconnect_all(nil)
	local master = Session:master_out()
	for k = 0, 1 do
		check(route:output():audio(k):connect(master:input():audio(k):name()) == 0,
			"cannot connect Programme output " .. (k + 1) .. " to the master bus")
	end
	check_routing(route)
end

local function open(path, state)
	local s = load_session(path, state)
	check(s ~= nil, "load_session(" .. path .. ", " .. state .. ") failed")
	return s
end

if step == "create" then
	local rate, with_plugin = tonumber(arg[4]), arg[5] == "1"
	local s = create_session(dir, name, rate)
	check(s ~= nil, "create_session(" .. dir .. ", " .. name .. ") failed")
	local tl = Session:new_audio_track(2, 2, nil, 1, "Programme",
		ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true, false)
	check(tl:size() == 1, "new_audio_track failed")
	local tr = tl:front()
	route_track(tr)
	if with_plugin then
		local found = false
		for p in ARDOUR.LuaAPI.list_plugins():iter() do
			if p.type == ARDOUR.PluginType.VST3 and p.unique_id == SLUICE_UID then
				print("  Ardour knows Sluice Meter VST3: " .. p.path)
				found = true
			end
		end
		check(found, "Ardour's plugin list has no Sluice Meter VST3 (uid " .. SLUICE_UID
			.. "): was the bundle scanned by ardour-vst3-scanner into this HOME's cache?")
		local proc = ARDOUR.LuaAPI.new_plugin(Session, "Sluice Meter", ARDOUR.PluginType.VST3, "")
		check(not proc:isnil(), "LuaAPI.new_plugin(Sluice Meter, VST3) returned nil")
		-- pre-fader, as the first plugin: index 0 among the user-visible processors
		check(tr:add_processor_by_index(proc, 0, nil, true) == 0, "add_processor_by_index failed")
	end
	print_processors(tr)
	check_plugins(tr, with_plugin, false)
	Session:save_state("", false, false, false, false, false)
	close_session()
elseif step == "place" then
	local with_plugin, armed = arg[4] ~= "0", arg[4] == "armed"
	open(dir, name)
	local tr = the_track()
	check_plugins(tr, with_plugin, false)
	if armed then
		-- parameter 0 is Record arm (checked by check_plugins' listing above)
		check(ARDOUR.LuaAPI.set_processor_param(tr:nth_plugin(0), 0, 1), "cannot set Record arm")
		-- Let a few process cycles pass before saving: while the engine runs, the plugin (nice-plug's
		-- VST3 wrapper) takes a host parameter change only from the next process call, and its saved
		-- state (which Ardour restores on re-open, over the saved parameter value) lags until then.
		-- Saving at once loses the change (docs/PLUGIN.md, "Ardour 7 render check").
		check(ARDOUR.LuaAPI.wait_for_process_callback(4, 5000), "no process cycle within 5 s")
		check_plugins(tr, with_plugin, true)
	end
	check_routing(tr)
	local whole = nil
	for _, r in ARDOUR.RegionFactory.regions():iter() do
		if r:name() == "programme" and r:whole_file() then whole = r end
	end
	check(whole ~= nil, "no whole-file region 'programme' (did `ardour-render.py inject` run?)")
	local copy = ARDOUR.RegionFactory.clone_region(whole, true, false)
	local ar = copy:to_audioregion()
	check(not ar:isnil(), "the region is not an audio region")
	ar:set_fade_in_active(false)
	ar:set_fade_out_active(false)
	ar:set_envelope_active(false)
	ar:set_scale_amplitude(1)
	local pl = tr:to_track():playlist()
	-- As one "insert region" operation (the name of Ardour's own operation, untranslated under
	-- LC_ALL=C): Ardour sets the session range from regions added during such operations only.
	Session:begin_reversible_command("insert region")
	pl:to_stateful():clear_changes()
	pl:add_region(copy, Temporal.timepos_t(0), 1, false)
	Session:add_stateful_diff_command(pl:to_statefuldestructible())
	Session:commit_reversible_command(nil)
	check(pl:region_list():size() == 1, "the playlist has " .. pl:region_list():size() .. " regions, expected 1")
	local loc = Session:locations():session_range_location()
	check(loc ~= nil, "the session has no session range after adding the region")
	print(string.format("  region '%s': %d channels, %d samples at %d; session range %d..%d",
		copy:name(), ar:n_channels(), copy:length():samples(), copy:position():samples(),
		loc:start():samples(), loc:_end():samples()))
	print_processors(tr)
	Session:save_state("", false, false, false, false, false)
	close_session()
elseif step == "inspect" then
	local with_plugin, armed = arg[4] ~= "0", arg[4] == "armed"
	open(dir, name)
	local tr = the_track()
	print_processors(tr)
	check_plugins(tr, with_plugin, armed)
	check_routing(tr)
	local pl = tr:to_track():playlist()
	check(pl:region_list():size() == 1, "the playlist has " .. pl:region_list():size() .. " regions, expected 1")
	print(string.format("  track latency: signal %d samples; session worst output latency %d",
		tr:signal_latency(), Session:worst_output_latency()))
	close_session()
else
	fail("unknown step; use create, place or inspect")
end
print("LUA-STEP-OK " .. step)

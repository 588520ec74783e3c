//! A small VST3 host on the `vst3` 0.3 bindings and libloading, following the SDK's own hosting
//! sequence (`public.sdk/source/vst/hosting/module_linux.cpp` and the validator):
//!
//! 1. `dlopen` the bundle's `Contents/<arch>-linux/<name>.so` (never closed: a Rust plugin
//!    leaves thread-locals and threads behind), `ModuleEntry` once per library,
//!    `GetPluginFactory`;
//! 2. `createInstance(cid, IComponent)`, `initialize`; the edit controller is the same object
//!    (nice-plug builds single-component plugins; a separate controller class is refused here);
//! 3. `setBusArrangements` (mono or stereo), `setupProcessing`, `activateBus`, `setActive(true)`;
//! 4. on an audio thread of the host's own: `setProcessing(true)`, `process` per block (with a
//!    `ProcessContext` or a null one for "no transport"), `setProcessing(false)`;
//! 5. `setActive(false)`, `terminate`.
//!
//! Parameters are read through `IEditController::getParameterCount/getParameterInfo` and set
//! with `setParamNormalized` between `process` runs (nice-plug ignores it while processing).
//! State goes through `IComponent::getState/setState` with [`MemStream`], an `IBStream` over a
//! byte vector.

use crate::{Transport, block_lengths, bundles, diagnostics};
use anyhow::{Context, Result, bail, ensure};
use libloading::Library;
use std::collections::HashSet;
use std::ffi::{c_char, c_void};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::{Mutex, OnceLock};
use vst3::Steinberg::IBStream_::IStreamSeekMode_::{kIBSeekCur, kIBSeekEnd, kIBSeekSet};
use vst3::Steinberg::PFactoryInfo_::FactoryFlags_;
use vst3::Steinberg::Vst::ProcessContext_::StatesAndFlags_::{kContTimeValid, kPlaying};
use vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, BusDirections_, IAudioProcessor, IAudioProcessorTrait,
    IComponent, IComponentTrait, IEditController, IEditControllerTrait, MediaTypes_, ParameterInfo,
    ProcessContext, ProcessData, ProcessModes_, ProcessSetup, SpeakerArr, SpeakerArrangement,
    String128, SymbolicSampleSizes_,
};
use vst3::Steinberg::{
    FIDString, IBStream, IBStreamTrait, IPlugView, IPlugViewTrait, IPluginBaseTrait,
    IPluginFactory, IPluginFactory2, IPluginFactory2Trait, IPluginFactory3, IPluginFactory3Trait,
    IPluginFactoryTrait, PClassInfo, PClassInfo2, PClassInfoW, PFactoryInfo, ViewRect, int32,
    int64, kInvalidArgument, kResultFalse, kResultOk, tresult,
};
use vst3::{Class, ComPtr, ComWrapper, Interface};

/// Written into the output buffers before every block, so a plugin that leaves an output
/// untouched cannot pass for a pass-through.
pub const OUTPUT_SENTINEL: f32 = crate::clap_host::OUTPUT_SENTINEL;

/// What `getFactoryInfo` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryInfo {
    pub vendor: String,
    pub url: String,
    pub email: String,
    pub flags: i32,
}

impl FactoryInfo {
    pub fn unicode(&self) -> bool {
        self.flags & FactoryFlags_::kUnicode as i32 != 0
    }
    pub fn classes_discardable(&self) -> bool {
        self.flags & FactoryFlags_::kClassesDiscardable as i32 != 0
    }
    pub fn component_non_discardable(&self) -> bool {
        self.flags & FactoryFlags_::kComponentNonDiscardable as i32 != 0
    }
}

/// A class as `getClassInfo2` or `getClassInfoUnicode` describes it (strings decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    pub cid: [u8; 16],
    pub cardinality: i32,
    pub category: String,
    pub name: String,
    pub class_flags: u32,
    /// `|`-separated, as the factory gives them.
    pub sub_categories: String,
    pub vendor: String,
    pub version: String,
    pub sdk_version: String,
}

/// Everything the factory says about one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryClass {
    /// `getClassInfo`: only cid, cardinality, category and name are set.
    pub basic: ClassInfo,
    /// `IPluginFactory2::getClassInfo2`, if the factory has it.
    pub info2: Option<ClassInfo>,
    /// `IPluginFactory3::getClassInfoUnicode`, if the factory has it.
    pub unicode: Option<ClassInfo>,
}

/// The CID as the SDK's `UID::toString` writes it on Linux: the 16 bytes, upper-case hex.
pub fn cid_hex(cid: &[u8; 16]) -> String {
    cid.iter().map(|b| format!("{b:02X}")).collect()
}

fn cstr(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn wstr(chars: &[u16]) -> String {
    let end = chars.iter().position(|&c| c == 0).unwrap_or(chars.len());
    String::from_utf16_lossy(&chars[..end])
}

fn cid_bytes(cid: &[c_char; 16]) -> [u8; 16] {
    cid.map(|c| c as u8)
}

/// A loaded VST3 module: its library and plugin factory.
pub struct Vst3Module {
    library: &'static Library,
    binary: PathBuf,
    factory: ComPtr<IPluginFactory>,
}

type ModuleEntryFn = unsafe extern "C" fn(*mut c_void) -> bool;
type GetPluginFactoryFn = unsafe extern "system" fn() -> *mut IPluginFactory;

impl Vst3Module {
    /// Loads the bundle (a `.vst3` folder): its library, `ModuleEntry` (once per library for the
    /// life of the process; nice-plug ignores the handle argument, so null is passed) and
    /// `GetPluginFactory`.
    pub fn load(bundle: &Path) -> Result<Self> {
        static ENTERED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
        let binary = bundles::vst3_binary(bundle);
        ensure!(
            binary.is_file(),
            "{} is not a VST3 bundle: {} is missing",
            bundle.display(),
            binary.display()
        );
        let library = diagnostics::library(&binary)?;
        {
            let mut entered = ENTERED
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !entered.contains(&binary) {
                // SAFETY: the VST3 Linux module ABI.
                let ok = unsafe {
                    let entry = library
                        .get::<ModuleEntryFn>(b"ModuleEntry")
                        .with_context(|| format!("{} exports no ModuleEntry", binary.display()))?;
                    entry(null_mut())
                };
                ensure!(ok, "{}: ModuleEntry returned false", binary.display());
                entered.insert(binary.clone());
            }
        }
        // SAFETY: the VST3 module ABI; the factory pointer comes with one reference, which the
        // ComPtr owns.
        let factory = unsafe {
            let get = library
                .get::<GetPluginFactoryFn>(b"GetPluginFactory")
                .with_context(|| format!("{} exports no GetPluginFactory", binary.display()))?;
            ComPtr::from_raw(get())
        }
        .with_context(|| format!("{}: GetPluginFactory returned null", binary.display()))?;
        Ok(Vst3Module {
            library,
            binary,
            factory,
        })
    }

    pub fn factory(&self) -> &ComPtr<IPluginFactory> {
        &self.factory
    }

    pub fn library(&self) -> &'static Library {
        self.library
    }

    /// `IPluginFactory::getFactoryInfo`.
    pub fn factory_info(&self) -> Result<FactoryInfo> {
        // SAFETY: a plain C struct the factory fills; all zeroes is valid.
        let mut info: PFactoryInfo = unsafe { std::mem::zeroed() };
        // SAFETY: a valid factory and a valid out pointer.
        let r = unsafe { self.factory.getFactoryInfo(&mut info) };
        ensure!(r == kResultOk, "getFactoryInfo returned {r}");
        Ok(FactoryInfo {
            vendor: cstr(&info.vendor),
            url: cstr(&info.url),
            email: cstr(&info.email),
            flags: info.flags,
        })
    }

    /// Every class, through all three factory interfaces the factory implements.
    pub fn classes(&self) -> Result<Vec<FactoryClass>> {
        let f2 = self.factory.cast::<IPluginFactory2>();
        let f3 = self.factory.cast::<IPluginFactory3>();
        // SAFETY: a valid factory.
        let count = unsafe { self.factory.countClasses() };
        let mut out = Vec::new();
        for i in 0..count {
            // SAFETY: a plain C struct, for which all zeros is a valid value.
            let mut c: PClassInfo = unsafe { std::mem::zeroed() };
            // SAFETY: the struct is ours and outlives the call; the factory is alive.
            let r = unsafe { self.factory.getClassInfo(i, &mut c) };
            ensure!(r == kResultOk, "getClassInfo({i}) returned {r}");
            let basic = ClassInfo {
                cid: cid_bytes(&c.cid),
                cardinality: c.cardinality,
                category: cstr(&c.category),
                name: cstr(&c.name),
                class_flags: 0,
                sub_categories: String::new(),
                vendor: String::new(),
                version: String::new(),
                sdk_version: String::new(),
            };
            let info2 = match &f2 {
                Some(f2) => {
                    // SAFETY: a plain C struct, for which all zeros is a valid value.
                    let mut c: PClassInfo2 = unsafe { std::mem::zeroed() };
                    // SAFETY: the struct is ours and outlives the call; the factory is alive.
                    let r = unsafe { f2.getClassInfo2(i, &mut c) };
                    ensure!(r == kResultOk, "getClassInfo2({i}) returned {r}");
                    Some(ClassInfo {
                        cid: cid_bytes(&c.cid),
                        cardinality: c.cardinality,
                        category: cstr(&c.category),
                        name: cstr(&c.name),
                        class_flags: c.classFlags,
                        sub_categories: cstr(&c.subCategories),
                        vendor: cstr(&c.vendor),
                        version: cstr(&c.version),
                        sdk_version: cstr(&c.sdkVersion),
                    })
                }
                None => None,
            };
            let unicode = match &f3 {
                Some(f3) => {
                    // SAFETY: a plain C struct, for which all zeros is a valid value.
                    let mut c: PClassInfoW = unsafe { std::mem::zeroed() };
                    // SAFETY: the struct is ours and outlives the call; the factory is alive.
                    let r = unsafe { f3.getClassInfoUnicode(i, &mut c) };
                    ensure!(r == kResultOk, "getClassInfoUnicode({i}) returned {r}");
                    Some(ClassInfo {
                        cid: cid_bytes(&c.cid),
                        cardinality: c.cardinality,
                        category: cstr(&c.category),
                        name: wstr(&c.name),
                        class_flags: c.classFlags,
                        sub_categories: cstr(&c.subCategories),
                        vendor: wstr(&c.vendor),
                        version: wstr(&c.version),
                        sdk_version: wstr(&c.sdkVersion),
                    })
                }
                None => None,
            };
            out.push(FactoryClass {
                basic,
                info2,
                unicode,
            });
        }
        Ok(out)
    }

    /// Creates and initialises an instance of the class `cid` (an "Audio Module Class").
    pub fn create(&self, cid: [u8; 16]) -> Result<Vst3Host> {
        let classes = self.classes()?;
        ensure!(
            classes
                .iter()
                .any(|c| c.basic.cid == cid && c.basic.category == "Audio Module Class"),
            "{} has no audio module class {}; it lists {:?}",
            self.binary.display(),
            cid_hex(&cid),
            classes
                .iter()
                .map(|c| (cid_hex(&c.basic.cid), &c.basic.category))
                .collect::<Vec<_>>()
        );
        let mut obj: *mut c_void = null_mut();
        // SAFETY: valid pointers to the 16-byte class and interface ids and to the out pointer.
        let r = unsafe {
            self.factory.createInstance(
                cid.as_ptr() as FIDString,
                IComponent::IID.as_ptr() as FIDString,
                &mut obj,
            )
        };
        ensure!(
            r == kResultOk && !obj.is_null(),
            "createInstance({}, IComponent) returned {r}",
            cid_hex(&cid)
        );
        // SAFETY: createInstance hands over one reference to an IComponent.
        let component = unsafe { ComPtr::from_raw(obj as *mut IComponent) }
            .context("createInstance gave a null component")?;
        // SAFETY: a valid component; nice-plug ignores the host context, a real host would
        // pass its IHostApplication.
        let r = unsafe { component.initialize(null_mut()) };
        ensure!(r == kResultOk, "IComponent::initialize returned {r}");
        let mut host = Vst3Host {
            processor: None,
            controller: None,
            component,
            library: self.library,
            binary: self.binary.clone(),
            active: None,
            continuous_samples: 0,
            pace: None,
            view: None,
        };
        host.processor = Some(
            host.component
                .cast::<IAudioProcessor>()
                .context("the component is not an IAudioProcessor")?,
        );
        host.controller = Some(host.component.cast::<IEditController>().context(
            "the component is not its own IEditController (a separate controller class is not \
             supported by this test host)",
        )?);
        // SAFETY: a valid processor.
        let r = unsafe {
            host.processor()
                .canProcessSampleSize(SymbolicSampleSizes_::kSample32 as int32)
        };
        ensure!(r == kResultOk, "canProcessSampleSize(32-bit) returned {r}");
        Ok(host)
    }
}

/// A parameter as `IEditController::getParameterInfo` describes it, with its current
/// normalized value.
#[derive(Debug, Clone, PartialEq)]
pub struct Vst3Param {
    pub id: u32,
    pub title: String,
    pub short_title: String,
    pub units: String,
    pub step_count: i32,
    pub default_normalized: f64,
    pub value: f64,
    pub unit_id: i32,
    pub flags: i32,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    sample_rate: f64,
    max_frames: usize,
    channels: usize,
}

/// One plugin instance in the VST3 host. Drop deactivates and terminates it; the library stays
/// loaded.
pub struct Vst3Host {
    // Released before the component (all three are the same object).
    processor: Option<ComPtr<IAudioProcessor>>,
    controller: Option<ComPtr<IEditController>>,
    component: ComPtr<IComponent>,
    library: &'static Library,
    binary: PathBuf,
    active: Option<Active>,
    continuous_samples: i64,
    /// At most this many times real time (`None`: as fast as it goes).
    pace: Option<f64>,
    /// The open editor view, if any (released before everything else).
    view: Option<ComPtr<IPlugView>>,
}

fn speaker_arrangement(channels: u32) -> Result<SpeakerArrangement> {
    match channels {
        1 => Ok(SpeakerArr::kMono),
        2 => Ok(SpeakerArr::kStereo),
        6 => Ok(SpeakerArr::k51),
        n => bail!("this test host knows mono, stereo and 5.1 arrangements, not {n} channels"),
    }
}

fn title(s: &String128) -> String {
    wstr(s)
}

impl Vst3Host {
    /// Processes at most `speed` times real time from now on (`None`: as fast as it goes).
    pub fn set_pace(&mut self, speed: Option<f64>) {
        self.pace = speed;
    }

    /// Loads the bundle and creates an instance of `cid`.
    pub fn load(bundle: &Path, cid: [u8; 16]) -> Result<Self> {
        Vst3Module::load(bundle)?.create(cid)
    }

    fn processor(&self) -> &ComPtr<IAudioProcessor> {
        self.processor
            .as_ref()
            .expect("the processor exists from creation to drop")
    }

    fn controller(&self) -> &ComPtr<IEditController> {
        self.controller
            .as_ref()
            .expect("the controller exists from creation to drop")
    }

    /// Every parameter, in the plugin's order, with its current normalized value.
    pub fn params(&self) -> Result<Vec<Vst3Param>> {
        (0..self.param_count()).map(|i| self.param_at(i)).collect()
    }

    /// `getParameterCount`.
    pub fn param_count(&self) -> i32 {
        // SAFETY: a valid controller.
        unsafe { self.controller().getParameterCount() }
    }

    /// `getParameterInfo(index)` and the value; an error carries the plugin's result code (an
    /// index out of range must give `kInvalidArgument`).
    pub fn param_at(&self, index: i32) -> Result<Vst3Param> {
        let c = self.controller();
        // SAFETY: a plain C struct the plugin fills.
        let mut info: ParameterInfo = unsafe { std::mem::zeroed() };
        // SAFETY: a valid controller and out pointer.
        let r = unsafe { c.getParameterInfo(index, &mut info) };
        ensure!(r == kResultOk, "getParameterInfo({index}) returned {r}");
        Ok(Vst3Param {
            id: info.id,
            title: title(&info.title),
            short_title: title(&info.shortTitle),
            units: title(&info.units),
            step_count: info.stepCount,
            default_normalized: info.defaultNormalizedValue,
            // SAFETY: a valid controller.
            value: unsafe { c.getParamNormalized(info.id) },
            unit_id: info.unitId,
            flags: info.flags,
        })
    }

    /// `getParamNormalized`.
    pub fn param_normalized(&self, id: u32) -> f64 {
        // SAFETY: a valid controller.
        unsafe { self.controller().getParamNormalized(id) }
    }

    /// `setParamNormalized`: the host's way to set a value outside processing. Only between
    /// [`process`](Self::process) runs (nice-plug ignores it while processing).
    pub fn set_param_normalized(&mut self, id: u32, value: f64) -> Result<()> {
        // SAFETY: a valid controller.
        let r = unsafe { self.controller().setParamNormalized(id, value) };
        ensure!(
            r == kResultOk,
            "setParamNormalized({id}, {value}) returned {r}"
        );
        Ok(())
    }

    /// `getParamStringByValue`: how the plugin displays `normalized` for `id`.
    pub fn param_display(&self, id: u32, normalized: f64) -> Result<String> {
        // SAFETY: a plain UTF-16 array the plugin fills.
        let mut s: String128 = unsafe { std::mem::zeroed() };
        // SAFETY: a valid controller and out pointer.
        let r = unsafe {
            self.controller()
                .getParamStringByValue(id, normalized, &mut s)
        };
        ensure!(r == kResultOk, "getParamStringByValue({id}) returned {r}");
        Ok(title(&s))
    }

    /// Asks for `channels` in and out (mono, stereo or 5.1) with `setBusArrangements`, then checks
    /// `getBusArrangement`. Only while inactive.
    pub fn set_layout(&mut self, channels: u32) -> Result<()> {
        ensure!(
            self.active.is_none(),
            "bus arrangements change only while inactive"
        );
        let mut ins = speaker_arrangement(channels)?;
        let mut outs = ins;
        // SAFETY: a valid processor and one arrangement each way.
        let r = unsafe {
            self.processor()
                .setBusArrangements(&mut ins, 1, &mut outs, 1)
        };
        ensure!(
            r == kResultOk,
            "setBusArrangements({channels} ch) returned {r}"
        );
        for dir in [BusDirections_::kInput, BusDirections_::kOutput] {
            let mut arr: SpeakerArrangement = 0;
            // SAFETY: a valid processor and out pointer.
            let r = unsafe { self.processor().getBusArrangement(dir as i32, 0, &mut arr) };
            ensure!(
                r == kResultOk && arr.count_ones() == channels,
                "getBusArrangement(direction {dir}) gave {arr:#x} ({r}) after asking for {channels} channels"
            );
        }
        Ok(())
    }

    /// The main buses' channel counts (input, output), from `getBusArrangement`.
    pub fn bus_channels(&self) -> Result<(usize, usize)> {
        let mut counts = [0usize; 2];
        for (count, dir) in counts
            .iter_mut()
            .zip([BusDirections_::kInput, BusDirections_::kOutput])
        {
            let mut arr: SpeakerArrangement = 0;
            // SAFETY: a valid processor and out pointer.
            let r = unsafe { self.processor().getBusArrangement(dir as i32, 0, &mut arr) };
            ensure!(
                r == kResultOk,
                "getBusArrangement(direction {dir}) returned {r}"
            );
            *count = arr.count_ones() as usize;
        }
        Ok((counts[0], counts[1]))
    }

    /// `setupProcessing` (real-time, 32-bit, `sample_rate`, up to `max_frames`), `activateBus`
    /// on the main input and output, `setActive(true)`.
    pub fn activate(&mut self, sample_rate: f64, max_frames: u32) -> Result<()> {
        ensure!(self.active.is_none(), "already active");
        let (ins, outs) = self.bus_channels()?;
        ensure!(
            ins == outs,
            "the buses have {ins} channels in and {outs} out"
        );
        let mut setup = ProcessSetup {
            processMode: ProcessModes_::kRealtime as int32,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as int32,
            maxSamplesPerBlock: i32::try_from(max_frames).context("max_frames too large")?,
            sampleRate: sample_rate,
        };
        // SAFETY: valid pointers; the call order is the SDK's.
        unsafe {
            let r = self.processor().setupProcessing(&mut setup);
            ensure!(
                r == kResultOk,
                "setupProcessing({sample_rate} Hz, max {max_frames}) returned {r}"
            );
            for dir in [BusDirections_::kInput, BusDirections_::kOutput] {
                let r = self
                    .component
                    .activateBus(MediaTypes_::kAudio as i32, dir as i32, 0, 1);
                ensure!(
                    r == kResultOk,
                    "activateBus(audio, direction {dir}, 0) returned {r}"
                );
            }
            let r = self.component.setActive(1);
            ensure!(r == kResultOk, "setActive(true) returned {r}");
        }
        self.active = Some(Active {
            sample_rate,
            max_frames: max_frames as usize,
            channels: ins,
        });
        Ok(())
    }

    /// `setActive(false)` (a no-op when inactive).
    pub fn deactivate(&mut self) -> Result<()> {
        if self.active.take().is_some() {
            // SAFETY: a valid component.
            let r = unsafe { self.component.setActive(0) };
            ensure!(r == kResultOk, "setActive(false) returned {r}");
        }
        Ok(())
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Processes `input` (planar, all channels the same length) in blocks of the sizes in
    /// `pattern` (repeated, the last cut to what is left) on an audio thread that calls
    /// `setProcessing(true)`, `process` per block and `setProcessing(false)`. With a transport
    /// each block gets a `ProcessContext` (`kPlaying` or not, `projectTimeSamples`); with `None`
    /// `processContext` is null. Outputs are filled with [`OUTPUT_SENTINEL`] before each block.
    pub fn process(
        &mut self,
        input: &[Vec<f32>],
        pattern: &[usize],
        transport: Option<Transport>,
    ) -> Result<Vec<Vec<f32>>> {
        let active = self.active.context("process called while inactive")?;
        ensure!(
            input.len() == active.channels,
            "{} input channels given, the buses have {}",
            input.len(),
            active.channels
        );
        let frames = input.first().map_or(0, Vec::len);
        ensure!(
            input.iter().all(|c| c.len() == frames),
            "input channels differ in length"
        );
        let blocks = block_lengths(frames, pattern)?;
        ensure!(
            blocks.iter().all(|&n| n <= active.max_frames),
            "a block of {pattern:?} is longer than the set-up maximum {}",
            active.max_frames
        );
        let job = AudioJob {
            processor: self.processor(),
            input,
            blocks: &blocks,
            transport,
            active,
            continuous_start: self.continuous_samples,
            pace: self.pace,
        };
        let joined = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("vst3-audio".into())
                .spawn_scoped(s, move || job.run())
                .map(|t| t.join())
        });
        let result = match joined {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => bail!("could not start the audio thread: {e}"),
        };
        self.continuous_samples += frames as i64;
        result
    }

    /// `IComponent::getState` into a memory stream.
    pub fn get_state(&self) -> Result<Vec<u8>> {
        let stream = ComWrapper::new(MemStream::default());
        let ptr = stream
            .to_com_ptr::<IBStream>()
            .context("MemStream is not an IBStream")?;
        // SAFETY: a valid component and stream.
        let r = unsafe { self.component.getState(ptr.as_ptr()) };
        ensure!(r == kResultOk, "IComponent::getState returned {r}");
        Ok(stream.bytes())
    }

    /// `IComponent::setState` from a memory stream positioned at 0, then (as hosts do)
    /// `IEditController::setComponentState` with the same bytes.
    pub fn set_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.set_state_at(bytes, 0)
    }

    /// Like [`set_state`](Self::set_state), with the stream positioned at `offset` (some hosts
    /// put their own header before the plugin's data).
    pub fn set_state_at(&mut self, bytes: &[u8], offset: usize) -> Result<()> {
        ensure!(offset <= bytes.len(), "offset past the end");
        for target in ["IComponent::setState", "IEditController::setComponentState"] {
            let stream = ComWrapper::new(MemStream::with_bytes(bytes.to_vec(), offset as u64));
            let ptr = stream
                .to_com_ptr::<IBStream>()
                .context("MemStream is not an IBStream")?;
            // SAFETY: valid objects.
            let r = unsafe {
                if target.starts_with("IComponent") {
                    self.component.setState(ptr.as_ptr())
                } else {
                    self.controller().setComponentState(ptr.as_ptr())
                }
            };
            ensure!(
                r == kResultOk,
                "{target} of {} bytes returned {r}",
                bytes.len()
            );
        }
        Ok(())
    }

    /// The plugin library's diagnostics (see [`crate::diagnostics`]): `None` while the library
    /// does not export `sluice_meter_diagnostics_v1`. Panics, saying why, if what it writes is
    /// not JSON.
    pub fn diagnostics(&self) -> Option<serde_json::Value> {
        diagnostics::from_library(self.library).unwrap_or_else(|e| {
            panic!("diagnostics of {}: {e:#}", self.binary.display());
        })
    }

    /// The loaded library, to look up other exported symbols.
    pub fn library(&self) -> &'static Library {
        self.library
    }
}

/// The X11 platform type of `IPlugView::attached`.
const X11_EMBED: &std::ffi::CStr = c"X11EmbedWindowID";

impl Vst3Host {
    /// Opens the editor as a host does: `createView("editor")`, `isPlatformTypeSupported`,
    /// `getSize`, `attached` to the X11 window `parent`. Returns the size the view asked for.
    pub fn open_editor(&mut self, parent: u32) -> Result<(i32, i32)> {
        ensure!(self.view.is_none(), "the editor is already open");
        // SAFETY: a valid controller and a NUL-terminated view type.
        let raw = unsafe {
            self.controller()
                .createView(c"editor".as_ptr() as FIDString)
        };
        // SAFETY: createView hands over one reference, or null.
        let view = unsafe { ComPtr::from_raw(raw) }.context("createView(\"editor\") gave null")?;
        // SAFETY: a valid view and a NUL-terminated platform type.
        let r = unsafe { view.isPlatformTypeSupported(X11_EMBED.as_ptr() as FIDString) };
        ensure!(
            r == kResultOk,
            "isPlatformTypeSupported(X11EmbedWindowID) returned {r}"
        );
        let mut rect = ViewRect {
            left: 0,
            top: 0,
            right: 0,
            bottom: 0,
        };
        // SAFETY: a valid view and rect.
        let r = unsafe { view.getSize(&mut rect) };
        ensure!(r == kResultOk, "IPlugView::getSize returned {r}");
        // SAFETY: the parent is an X11 window id passed as the pointer-sized handle, as VST3
        // hosts on Linux do.
        let r = unsafe {
            view.attached(
                parent as usize as *mut c_void,
                X11_EMBED.as_ptr() as FIDString,
            )
        };
        ensure!(r == kResultOk, "IPlugView::attached returned {r}");
        self.view = Some(view);
        Ok((rect.right - rect.left, rect.bottom - rect.top))
    }

    /// Closes the editor: `removed`, then the view's last reference released.
    pub fn close_editor(&mut self) {
        if let Some(view) = self.view.take() {
            // SAFETY: an attached view, removed once.
            let r = unsafe { view.removed() };
            if r != kResultOk {
                eprintln!("vst3 host: IPlugView::removed returned {r}");
            }
        }
    }
}

impl Drop for Vst3Host {
    fn drop(&mut self) {
        self.close_editor();
        if let Err(e) = self.deactivate() {
            eprintln!("vst3 host: {e:#}");
        }
        // SAFETY: a valid component, terminated once.
        let r = unsafe { self.component.terminate() };
        if r != kResultOk {
            eprintln!("vst3 host: IComponent::terminate returned {r}");
        }
    }
}

/// Everything the audio thread needs for one `process` run.
struct AudioJob<'a> {
    processor: &'a ComPtr<IAudioProcessor>,
    input: &'a [Vec<f32>],
    blocks: &'a [usize],
    transport: Option<Transport>,
    active: Active,
    continuous_start: i64,
    pace: Option<f64>,
}

impl AudioJob<'_> {
    fn run(self) -> Result<Vec<Vec<f32>>> {
        // SAFETY: a valid, active processor.
        let r = unsafe { self.processor.setProcessing(1) };
        ensure!(r == kResultOk, "setProcessing(true) returned {r}");
        let result = self.blocks();
        // SAFETY: as above.
        let r = unsafe { self.processor.setProcessing(0) };
        let output = result?;
        ensure!(r == kResultOk, "setProcessing(false) returned {r}");
        Ok(output)
    }

    fn blocks(&self) -> Result<Vec<Vec<f32>>> {
        let channels = self.active.channels;
        let frames: usize = self.blocks.iter().sum();
        // The host's own bus buffers, allocated once for the set-up maximum.
        let mut in_bufs = vec![vec![0f32; self.active.max_frames]; channels];
        let mut out_bufs = vec![vec![0f32; self.active.max_frames]; channels];
        let mut output = vec![Vec::with_capacity(frames); channels];
        let mut position = self.transport.map_or(0, |t| t.position_samples);
        let mut done = 0usize;
        let pace = crate::Pace::new(self.active.sample_rate, self.pace);
        for (k, &n) in self.blocks.iter().enumerate() {
            for (buf, ch) in in_bufs.iter_mut().zip(self.input) {
                buf[..n].copy_from_slice(&ch[done..done + n]);
            }
            for buf in &mut out_bufs {
                buf[..n].fill(OUTPUT_SENTINEL);
            }
            let mut in_ptrs: Vec<*mut f32> = in_bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
            let mut out_ptrs: Vec<*mut f32> = out_bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
            let mut inputs = AudioBusBuffers {
                numChannels: channels as int32,
                silenceFlags: 0,
                __field0: AudioBusBuffers__type0 {
                    channelBuffers32: in_ptrs.as_mut_ptr(),
                },
            };
            let mut outputs = AudioBusBuffers {
                numChannels: channels as int32,
                silenceFlags: 0,
                __field0: AudioBusBuffers__type0 {
                    channelBuffers32: out_ptrs.as_mut_ptr(),
                },
            };
            // SAFETY: a plain C struct; all zeroes is valid.
            let mut context: ProcessContext = unsafe { std::mem::zeroed() };
            if let Some(t) = self.transport {
                // The enum type is u32 on Linux, not on every platform.
                #[allow(clippy::unnecessary_cast)]
                {
                    context.state = kContTimeValid as u32;
                    if t.playing {
                        context.state |= kPlaying as u32;
                    }
                }
                context.sampleRate = self.active.sample_rate;
                context.projectTimeSamples = position;
                context.continousTimeSamples = self.continuous_start + done as i64;
            }
            let mut data = ProcessData {
                processMode: ProcessModes_::kRealtime as int32,
                symbolicSampleSize: SymbolicSampleSizes_::kSample32 as int32,
                numSamples: n as int32,
                numInputs: 1,
                numOutputs: 1,
                inputs: &mut inputs,
                outputs: &mut outputs,
                inputParameterChanges: null_mut(),
                outputParameterChanges: null_mut(),
                inputEvents: null_mut(),
                outputEvents: null_mut(),
                processContext: if self.transport.is_some() {
                    &mut context
                } else {
                    null_mut()
                },
            };
            // SAFETY: every pointer in `data` is valid for the call; the buffers hold `n` frames.
            let r = unsafe { self.processor.process(&mut data) };
            ensure!(
                r == kResultOk,
                "process returned {r} on block {k} ({n} frames from frame {done})"
            );
            for (out, buf) in output.iter_mut().zip(&out_bufs) {
                out.extend_from_slice(&buf[..n]);
            }
            done += n;
            if self.transport.is_some_and(|t| t.playing) {
                position += n as i64;
            }
            pace.after(done);
        }
        Ok(output)
    }
}

/// An `IBStream` over bytes in memory, like the SDK's `MemoryStream`: reads stop at the end,
/// writes extend the data, seeking is allowed from 0 up to the end.
#[derive(Default)]
pub struct MemStream {
    data: Mutex<Cursor<Vec<u8>>>,
}

impl MemStream {
    pub fn with_bytes(bytes: Vec<u8>, position: u64) -> Self {
        let mut c = Cursor::new(bytes);
        c.set_position(position);
        MemStream {
            data: Mutex::new(c),
        }
    }

    /// A copy of everything written.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock().get_ref().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor<Vec<u8>>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Class for MemStream {
    type Interfaces = (IBStream,);
}

impl IBStreamTrait for MemStream {
    unsafe fn read(&self, buffer: *mut c_void, num_bytes: int32, num_read: *mut int32) -> tresult {
        let Ok(wanted) = usize::try_from(num_bytes) else {
            return kInvalidArgument;
        };
        if buffer.is_null() && wanted > 0 {
            return kInvalidArgument;
        }
        let mut c = self.lock();
        let pos = (c.position() as usize).min(c.get_ref().len());
        let n = wanted.min(c.get_ref().len() - pos);
        // SAFETY: the caller gives a buffer of `num_bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(c.get_ref()[pos..].as_ptr(), buffer as *mut u8, n) };
        c.set_position((pos + n) as u64);
        if !num_read.is_null() {
            // SAFETY: a valid out pointer; n <= num_bytes fits.
            unsafe { *num_read = n as int32 };
        }
        kResultOk
    }

    unsafe fn write(
        &self,
        buffer: *mut c_void,
        num_bytes: int32,
        num_written: *mut int32,
    ) -> tresult {
        let Ok(n) = usize::try_from(num_bytes) else {
            return kInvalidArgument;
        };
        if buffer.is_null() && n > 0 {
            return kInvalidArgument;
        }
        let bytes: &[u8] = if n == 0 {
            &[]
        } else {
            // SAFETY: the caller gives `num_bytes` readable bytes.
            unsafe { std::slice::from_raw_parts(buffer as *const u8, n) }
        };
        if self.lock().write_all(bytes).is_err() {
            return kResultFalse;
        }
        if !num_written.is_null() {
            // SAFETY: a valid out pointer.
            unsafe { *num_written = num_bytes };
        }
        kResultOk
    }

    unsafe fn seek(&self, pos: int64, mode: int32, result: *mut int64) -> tresult {
        let mut c = self.lock();
        let base = match mode {
            m if m == kIBSeekSet as int32 => 0,
            m if m == kIBSeekCur as int32 => c.position() as i64,
            m if m == kIBSeekEnd as int32 => c.get_ref().len() as i64,
            _ => return kInvalidArgument,
        };
        let Some(new) = base.checked_add(pos) else {
            return kInvalidArgument;
        };
        if new < 0 || new > c.get_ref().len() as i64 {
            return kResultFalse;
        }
        c.set_position(new as u64);
        if !result.is_null() {
            // SAFETY: a valid out pointer.
            unsafe { *result = new };
        }
        kResultOk
    }

    unsafe fn tell(&self, pos: *mut int64) -> tresult {
        if pos.is_null() {
            return kInvalidArgument;
        }
        // SAFETY: a valid out pointer.
        unsafe { *pos = self.lock().position() as int64 };
        kResultOk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_stream_reads_writes_and_seeks_like_the_sdk_one() {
        let s = ComWrapper::new(MemStream::default());
        let p = s.to_com_ptr::<IBStream>().expect("an IBStream");
        let mut n = 0;
        let mut pos = -1;
        // SAFETY: valid buffers and out pointers throughout.
        unsafe {
            let mut data = *b"hello world";
            assert_eq!(p.write(data.as_mut_ptr().cast(), 11, &mut n), kResultOk);
            assert_eq!(n, 11);
            assert_eq!(p.tell(&mut pos), kResultOk);
            assert_eq!(pos, 11);
            assert_eq!(p.seek(0, kIBSeekEnd as int32, &mut pos), kResultOk);
            assert_eq!(pos, 11);
            assert_eq!(p.seek(6, kIBSeekSet as int32, &mut pos), kResultOk);
            let mut out = [0u8; 16];
            assert_eq!(p.read(out.as_mut_ptr().cast(), 16, &mut n), kResultOk);
            assert_eq!((n, &out[..5]), (5, &b"world"[..]));
            assert_eq!(p.read(out.as_mut_ptr().cast(), 16, &mut n), kResultOk);
            assert_eq!(n, 0, "reads stop at the end");
            assert_eq!(p.seek(-5, kIBSeekCur as int32, &mut pos), kResultOk);
            assert_eq!(pos, 6);
            assert_ne!(p.seek(-1, kIBSeekSet as int32, null_mut()), kResultOk);
            let mut more = *b"W";
            assert_eq!(p.write(more.as_mut_ptr().cast(), 1, &mut n), kResultOk);
        }
        assert_eq!(s.bytes(), b"hello World");
        assert_eq!(
            cid_hex(b"SluiceMeterPlug1"),
            "536C756963654D65746572506C756731"
        );
    }
}

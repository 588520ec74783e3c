//! The SDK's own behaviour, through a small test effect: descriptor JSON, the runtime's return
//! codes and clamping, arena alignment and exhaustion, the JSON parser, the test signals.

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError, Params, abi,
    dsp::Ramp,
    effect,
    native::{Error, Instance, check, json, signal},
};

effect! {
    /// A test effect: a one-sample-per-channel memory so it takes arena memory.
    pub struct ProbeParams for Probe {
        name: "probe",
        version: "0.1.0-test",
        description: "Probe \"effect\" with a \\ backslash",
        tail_seconds: 1e-3,
        max_channels: 4,
    }
    params {
        level: { name: "Level", unit: "dB", min: -60, max: 12.5, default: 0 },
        r#type: { name: "Type", choices: ["a", "b-2", "c_3"], default: "b-2" },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 0.25 },
    }
}

pub struct Probe<'a> {
    lines: &'a mut [f32],
    updates: usize,
    channels: usize,
}

impl<'a> Effect<'a> for Probe<'a> {
    type Params = ProbeParams;
    fn new(config: &Config, _: &ProbeParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        if config.sample_rate == 12_345 {
            return Err(InitError::Unsupported);
        }
        Ok(Probe {
            lines: arena.take(1000 * config.channels)?,
            updates: 0,
            channels: config.channels,
        })
    }
    fn update(&mut self, _: &ProbeParams) {
        self.updates += 1;
    }
    fn process(&mut self, channels: &mut [&mut [f32]]) {
        assert_eq!(channels.len(), self.channels);
        for (c, ch) in channels.iter_mut().enumerate() {
            for x in ch.iter_mut() {
                std::mem::swap(&mut self.lines[c], x);
            }
        }
    }
    fn reset(&mut self, _: &ProbeParams) {
        self.lines.fill(0.0);
    }
    fn latency(&self) -> u32 {
        1 + self.updates as u32
    }
}

#[test]
fn descriptor_json_is_written_from_the_declaration() {
    assert_eq!(
        ProbeParams::DESCRIPTOR,
        concat!(
            r#"{"abi":1,"name":"probe","version":"0.1.0-test","description":"Probe \"effect\" with a \\ backslash","#,
            r#""params":[{"id":"level","name":"Level","unit":"dB","min":-60,"max":12.5,"default":0},"#,
            r#"{"id":"type","name":"Type","unit":"","min":0,"max":2,"default":1,"choices":["a","b-2","c_3"]},"#,
            r#"{"id":"mix","name":"Mix","unit":"","min":0.0,"max":1.0,"default":0.25}],"#,
            r#""tail_seconds":1e-3,"max_channels":4}"#
        )
    );
    let d = check::descriptor_matches::<ProbeParams>().unwrap();
    assert_eq!(d.description, "Probe \"effect\" with a \\ backslash");
    assert_eq!(d.params[1].choices, ["a", "b-2", "c_3"]);
    let p = ProbeParams::default();
    assert_eq!((p.level, p.r#type, p.mix), (0.0, 1, 0.25));
    assert_eq!(ProbeParams::index_of("type"), Some(1));
}

#[test]
fn init_refuses_what_the_abi_says() {
    let mut mem = vec![0.0f32; 1 << 16];
    let codes = [
        ((7_999, 2, 64), abi::ERR_SAMPLE_RATE),
        ((768_001, 2, 64), abi::ERR_SAMPLE_RATE),
        ((48_000, 0, 64), abi::ERR_CHANNELS),
        ((48_000, 5, 64), abi::ERR_CHANNELS),
        ((48_000, 2, 0), abi::ERR_FRAMES),
        ((48_000, 2, 65_537), abi::ERR_FRAMES),
        ((12_345, 2, 64), abi::ERR_UNSUPPORTED),
        ((48_000, 4, 16_000), abi::ERR_MEMORY),
    ];
    for ((sr, ch, mf), code) in codes {
        let e = Instance::<Probe>::new(&mut mem, sr, ch, mf).err();
        assert_eq!(e.map(InitError::code), Some(code), "{sr} {ch} {mf}");
    }
    assert!(Instance::<Probe>::new(&mut mem, 768_000, 4, 8_000).is_ok());
}

#[test]
fn buffers_params_process_reset() {
    let mut mem = vec![1.0f32; 1 << 16];
    let mut fx = Instance::<Probe>::new(&mut mem, 44_100, 3, 61).unwrap();
    // Buffers: max_frames long, zeroed, 16-byte aligned, distinct; none past the last channel.
    let mut addrs = vec![];
    for c in 0..3 {
        let b = fx.buffer(c).unwrap();
        assert_eq!(b.len(), 61);
        assert!(b.iter().all(|&x| x == 0.0));
        assert_eq!(b.as_ptr() as usize % 16, 0);
        addrs.push(b.as_ptr() as usize);
    }
    assert!(addrs.windows(2).all(|w| w[1] >= w[0] + 61 * 4));
    assert!(fx.buffer(3).is_none());
    // Parameters: clamped, enumerations rounded, bad index and non-finite values refused.
    fx.set_param(0, 100.0).unwrap();
    fx.set_param(1, 1.6).unwrap();
    fx.set_param(2, -3.0).unwrap();
    assert_eq!(
        (fx.params().level, fx.params().r#type, fx.params().mix),
        (12.5, 2, 0.0)
    );
    fx.set_param(1, -7.0).unwrap();
    assert_eq!(fx.params().r#type, 0);
    assert_eq!(fx.set_param(3, 0.0), Err(Error(abi::ERR_PARAM_INDEX)));
    assert_eq!(fx.set_param(0, f32::NAN), Err(Error(abi::ERR_PARAM_VALUE)));
    assert_eq!(
        fx.set_param(0, f32::INFINITY),
        Err(Error(abi::ERR_PARAM_VALUE))
    );
    // Changes are batched: one update for the four set_param calls, before latency/process.
    assert_eq!(fx.latency(), 2);
    fx.set("level", 1.0).set("mix", 0.5);
    for c in 0..3 {
        fx.buffer(c).unwrap()[..4].copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
    }
    fx.process(4).unwrap();
    assert_eq!(fx.latency(), 3);
    assert_eq!(&fx.buffer(1).unwrap()[..4], &[0.0, 1.0, 2.0, 3.0]);
    assert_eq!(fx.process(62), Err(Error(abi::ERR_FRAMES)));
    fx.process(0).unwrap();
    fx.reset();
    fx.buffer(0).unwrap()[0] = 9.0;
    fx.process(1).unwrap();
    assert_eq!(fx.buffer(0).unwrap()[0], 0.0);
}

#[test]
fn arena_aligns_zeroes_and_runs_out() {
    let mut mem = vec![7.0f32; 103];
    let base = mem.as_ptr() as usize;
    let mut arena = Arena::new(&mut mem[1..]);
    let a = arena.take(5).unwrap();
    assert_eq!(a.as_ptr() as usize % 16, 0);
    assert!(a.iter().all(|&x| x == 0.0));
    let [b, c] = arena.take_many::<2>(3).unwrap();
    assert_eq!((b.len(), c.len()), (3, 3));
    assert_eq!(b.as_ptr() as usize % 16, 0);
    assert_eq!(c.as_ptr() as usize % 16, 0);
    assert!(b.as_ptr() as usize >= a.as_ptr() as usize + 20);
    let idx = arena.take_zeroed::<u32>(3).unwrap();
    assert_eq!(idx.as_ptr() as usize % 16, 0);
    assert_eq!(idx, [0, 0, 0]);
    let wide = arena.take_zeroed::<f64>(2).unwrap();
    assert_eq!(wide.as_ptr() as usize % 16, 0);
    assert!(arena.take(1000).is_err());
    assert!(arena.take(0).unwrap().is_empty());
    assert!(arena.used_bytes() <= 4 * 102);
    assert!(base > 0);
}

#[test]
fn ramp_reaches_its_target_in_the_given_frames() {
    let mut r = Ramp::new(1.0, 4);
    r.set(0.0);
    let v: Vec<f32> = (0..6).map(|_| r.next()).collect();
    assert_eq!(v, [0.75, 0.5, 0.25, 0.0, 0.0, 0.0]);
    assert!(!r.is_active());
}

#[test]
fn json_parser_is_strict() {
    assert!(json::parse(r#"{"a":1,"a":2}"#).is_err());
    assert!(json::parse(r#"{"a":01}"#).is_err());
    assert!(json::parse(r#"{"a":1,}"#).is_err());
    assert!(json::parse(r#"{"a":"\ud800"}"#).is_err());
    assert!(json::parse(&("[".repeat(40) + &"]".repeat(40))).is_err());
    let v =
        json::parse(r#" {"s":"\u00e9\ud83d\ude00\n","n":-1.5e2,"i":3,"l":[true,null]} "#).unwrap();
    assert_eq!(v.get("s").unwrap().as_str(), Some("é😀\n"));
    assert_eq!(v.get("n").unwrap().as_f64(), Some(-150.0));
    assert_eq!(v.get("n").unwrap().as_int(), None);
    assert_eq!(v.get("i").unwrap().as_int(), Some(3));
}

#[test]
fn descriptor_checks_refuse_hostile_or_wrong_descriptors() {
    let good = ProbeParams::DESCRIPTOR;
    assert!(check::descriptor(good).is_ok());
    let bad = [
        good.replace(r#""abi":1"#, r#""abi":2"#),
        good.replace(r#""name":"probe""#, r#""name":"Probe""#),
        good.replace(r#""id":"mix""#, r#""id":"level""#),
        good.replace(r#""id":"mix""#, r#""id":"Mix-level""#),
        good.replace(r#""default":0.25"#, r#""default":2"#),
        good.replace(r#""max":2,"#, r#""max":3,"#),
        good.replace(r#""max_channels":4"#, r#""max_channels":33"#),
        good.replace(r#""tail_seconds":1e-3"#, r#""tail_seconds":-1"#),
        good.replace(r#""unit":"dB""#, r#""unit":"decibels relative""#),
        good.replace(r#""choices":["a","#, r#""choices":["b-2","#),
        format!("{good} x"),
    ];
    for b in &bad {
        assert!(check::descriptor(b).is_err(), "accepted {b}");
    }
    let many: Vec<String> = (0..65)
        .map(|i| format!(r#"{{"id":"p{i}","name":"P","unit":"","min":0,"max":1,"default":0}}"#))
        .collect();
    let too_many = format!(
        r#"{{"abi":1,"name":"x","version":"1","description":"","params":[{}],"tail_seconds":0,"max_channels":1}}"#,
        many.join(",")
    );
    assert!(
        check::descriptor(&too_many)
            .unwrap_err()
            .contains("65 params")
    );
    // Unknown fields are ignored.
    assert!(
        check::descriptor(&good.replace(r#""abi":1,"#, r#""abi":1,"future":[1,{"x":2}],"#)).is_ok()
    );
}

#[test]
fn true_peak_finds_intersample_peaks() {
    // A quarter-sample-rate sine at 45°: the samples sit at ±0.707 of the true amplitude.
    // Faded in and out: an abrupt start has intersample overshoots of its own.
    let mut x = signal::sine(12_000.0, 48_000.0, 4_800, 1.0, std::f64::consts::FRAC_PI_4);
    for i in 0..400 {
        let g = (i as f32 / 400.0 * std::f32::consts::FRAC_PI_2)
            .sin()
            .powi(2);
        x[i] *= g;
        x[4_799 - i] *= g;
    }
    assert!((signal::peak(&x) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-3);
    let tp = signal::true_peak(&x);
    assert!((signal::db(tp) - 0.0).abs() < 0.05, "{}", signal::db(tp));
    let y = signal::sine(997.0, 48_000.0, 48_000, 0.5, 0.3);
    assert!((signal::true_peak(&y) - 0.5).abs() < 0.002);
    assert!((signal::tone_amplitude(&y, 997.0, 48_000.0) - 0.5).abs() < 1e-3);
}

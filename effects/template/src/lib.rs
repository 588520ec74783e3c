//! The template effect: trim (a smoothed gain) and polarity. It shows every part an effect
//! has; copy the crate and change what is marked.
//!
//! Build: `cargo build --manifest-path effects/Cargo.toml --release -p sluice-effect-template`
//! gives `effects/target/wasm32-unknown-unknown/release/template.wasm`. Test natively:
//! `cargo test --manifest-path effects/Cargo.toml -p sluice-effect-template --target x86_64-unknown-linux-gnu`.

// No std on wasm32 (the SDK supplies the panic handler there); natively the SDK links std.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, db_to_gain},
    effect,
};

// 1. The declaration. Everything the host learns about the effect comes from here: the macro
//    writes the descriptor JSON (the `sluice_effect` custom section), the parameter struct
//    `TemplateParams`, and on wasm32 the `sluice_*` exports driving `Template`. Parameter
//    indexes are positions in `params`; ids are snake_case and are what pipelines write
//    (`params = { trim_db = -3.0, polarity = "inverted" }`).
effect! {
    /// The parameters of the template effect.
    pub struct TemplateParams for Template {
        name: "template",
        version: "1.0.0",
        description: "Template effect: trim (smoothed gain) and polarity. A starting point for new effects.",
        // How long output continues after the input stops; 0 for effects without memory.
        tail_seconds: 0.0,
        // The most channels the effect accepts; `Template` keeps no per-channel state, so any.
        max_channels: 32,
    }
    params {
        trim_db: { name: "Trim", unit: "dB", min: -24.0, max: 24.0, default: 0.0 },
        polarity: { name: "Polarity", choices: ["normal", "inverted"], default: "normal" },
    }
}

/// How long a change of trim or polarity takes (a jump would click).
const SMOOTHING_MS: f32 = 20.0;

// 2. The effect's state. Memory from the arena is borrowed for `'a`, for example
//    `struct Template<'a> { line: &'a mut [f32], .. }` and `impl<'a> Effect<'a> for
//    Template<'a>`; this one needs none, so it implements `Effect<'a>` for any `'a`.
/// Trim and polarity as one smoothed gain.
pub struct Template {
    gain: Ramp,
}

fn target(p: &TemplateParams) -> f32 {
    let sign = if p.polarity == 1 { -1.0 } else { 1.0 };
    sign * db_to_gain(p.trim_db)
}

impl<'a> Effect<'a> for Template {
    type Params = TemplateParams;

    // 3. Called once by `sluice_init`. Take all memory here (`arena.take(len)`); refuse what
    //    the effect cannot do with an `InitError`.
    fn new(
        config: &Config,
        params: &TemplateParams,
        _arena: &mut Arena<'a>,
    ) -> Result<Self, InitError> {
        let frames = config.ms_to_frames(SMOOTHING_MS) as u32;
        let mut gain = Ramp::new(0.0, frames);
        gain.snap(target(params));
        Ok(Template { gain })
    }

    // 4. After `sluice_set_param` (batched): values are already clamped to their ranges.
    fn update(&mut self, params: &TemplateParams) {
        self.gain.set(target(params));
    }

    // 5. One block, in place. Loop frames outside channels when a value is shared across
    //    channels and changes per frame, so all channels see the same ramp.
    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        for i in 0..frames {
            let g = self.gain.next();
            for ch in channels.iter_mut() {
                ch[i] *= g;
            }
        }
    }

    // 6. `sluice_reset`: forget the past, jump smoothed values to their targets.
    fn reset(&mut self, params: &TemplateParams) {
        self.gain.snap(target(params));
    }

    // 7. `sluice_latency` (frames): the default is 0.
}

// 8. Tests run natively (`--target x86_64-unknown-linux-gnu`) through the SDK's harness, which
//    drives the effect exactly as the host drives the wasm module.
#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::vec;

    #[test]
    fn trim_and_polarity() {
        let mut mem = memory();
        let mut fx = Instance::<Template>::new(&mut mem, 48_000, 2, 256).unwrap();
        let tone = signal::sine(1_000.0, 48_000.0, 48_000, 0.5, 0.0);
        let mut audio = vec![tone.clone(), tone.clone()];
        fx.set("trim_db", -6.0).set_choice("polarity", "inverted");
        fx.run(&mut audio);
        // After the 20 ms ramp every sample is the input times -10^(-6/20).
        let g = -libm_pow(-6.0);
        for (y, x) in audio[1][960..].iter().zip(&tone[960..]) {
            assert!((y - x * g).abs() < 1e-6, "{y} vs {}", x * g);
        }
        // During the ramp the gain moves monotonically from 1 to g.
        let ratios: std::vec::Vec<f32> = (1..960)
            .filter(|&i| tone[i].abs() > 0.1)
            .map(|i| audio[0][i] / tone[i])
            .collect();
        assert!(ratios.windows(2).all(|w| w[1] <= w[0] + 1e-6));
    }

    fn libm_pow(db: f32) -> f32 {
        db_to_gain(db)
    }
}

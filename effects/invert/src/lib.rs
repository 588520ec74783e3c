//! `invert`: polarity inversion — every sample negated, on all channels, or on channel 0 (left)
//! or channel 1 (right) only (to mend one side of a pair wired the wrong way round).
#![no_std]

use sluice_effect_sdk::{Arena, Config, Effect, InitError, effect};

effect! {
    /// Parameters of `invert`.
    pub struct InvertParams for Invert {
        name: "invert",
        version: "1.0.0",
        description: "Polarity inversion: every sample negated, on all channels, or on the left (channel 0) or the right (channel 1) only.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        channels: { name: "Channels", choices: ["all", "left", "right"], default: "all" },
    }
}

/// Which channels are negated.
pub struct Invert {
    which: usize,
}

impl Invert {
    fn flips(&self, channel: usize) -> bool {
        match self.which {
            0 => true,
            1 => channel == 0,
            _ => channel == 1,
        }
    }
}

impl<'a> Effect<'a> for Invert {
    type Params = InvertParams;

    fn new(_: &Config, params: &InvertParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        Ok(Invert {
            which: params.channels,
        })
    }

    fn update(&mut self, params: &InvertParams) {
        self.which = params.channels;
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        for (k, c) in channels.iter_mut().enumerate() {
            if self.flips(k) {
                for x in c.iter_mut() {
                    *x = -*x;
                }
            }
        }
    }

    fn reset(&mut self, params: &InvertParams) {
        self.which = params.channels;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::vec;

    #[test]
    fn every_sample_is_negated_on_the_chosen_channels() {
        let mut mem = memory();
        let input = vec![
            signal::noise(1, 4_000, 0.5),
            signal::noise(2, 4_000, 0.5),
            signal::noise(3, 4_000, 0.5),
        ];
        for (choice, flipped) in [
            ("all", [true, true, true]),
            ("left", [true, false, false]),
            ("right", [false, true, false]),
        ] {
            let mut fx = Instance::<Invert>::new(&mut mem, 48_000, 3, 512).unwrap();
            fx.set_choice("channels", choice);
            let mut out = input.clone();
            fx.run(&mut out);
            for (k, f) in flipped.iter().enumerate() {
                let want: std::vec::Vec<f32> =
                    input[k].iter().map(|&x| if *f { -x } else { x }).collect();
                assert!(out[k] == want, "{choice}: channel {k}");
            }
        }
    }

    #[test]
    fn it_keeps_no_state_and_adds_no_latency() {
        let mut mem = memory();
        let mut fx = Instance::<Invert>::new(&mut mem, 48_000, 1, 64).unwrap();
        assert_eq!(fx.latency(), 0);
        let mut impulse = vec![vec![0.0f32; 256]];
        impulse[0][0] = 1.0;
        fx.run(&mut impulse);
        assert_eq!(impulse[0][0], -1.0);
        assert!(impulse[0][1..].iter().all(|&x| x == 0.0), "no tail");
    }
}

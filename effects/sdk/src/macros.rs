//! The [`effect!`] macro.

/// Declares an effect's parameters and descriptor, once, and generates from that declaration:
///
/// - `struct $Params` with one public field per parameter (`f32` for a continuous parameter,
///   `usize` — the index into `choices` — for an enumerated one), `Default` giving the declared
///   defaults, and its [`Params`](crate::Params) implementation;
/// - the descriptor JSON ([`Params::DESCRIPTOR`](crate::Params::DESCRIPTOR)), checked at
///   compile time against the ABI's rules;
/// - on `wasm32` only: the `sluice_effect` custom section and the `sluice_*` exports, which
///   drive the named effect type (it must implement [`Effect`](crate::Effect) with
///   `type Params = $Params`). Natively nothing is exported, so several effects can be linked
///   into one binary.
///
/// ```ignore
/// sluice_effect_sdk::effect! {
///     /// Parameters of the gain effect.
///     pub struct GainParams for Gain {
///         name: "gain",
///         version: "1.0.0",
///         description: "Gain and stereo balance.",
///         tail_seconds: 0.0,
///         max_channels: 8,
///     }
///     params {
///         gain_db: { name: "Gain", unit: "dB", min: -96.0, max: 24.0, default: 0.0 },
///         mode: { name: "Mode", choices: ["normal", "invert"], default: "normal" },
///     }
/// }
/// ```
///
/// An effect that takes audio from the pipeline (an impulse response) declares its data slots
/// after the parameters; `Effect::new` finds what the host gave in
/// [`Arena::data`](crate::Arena::data) (slot index = position here):
///
/// ```ignore
///     params { ... }
///     data {
///         ir: { name: "Impulse response", max_channels: 32, max_seconds: 60 },
///     }
/// ```
///
/// Numbers are written into the JSON as they are written here, so they must be plain literals
/// that are also JSON numbers (`-1.5`, `20`, `1e3`; no `_`, no `f32` suffix, no trailing `.`);
/// the macro refuses others at compile time. A parameter whose id is a Rust keyword is declared
/// as a raw identifier (`r#type`: field `r#type`, id `type`). The parameter index of `sluice_set_param` is the
/// position in `params`.
#[macro_export]
macro_rules! effect {
    (
        $(#[$meta:meta])*
        $vis:vis struct $params:ident for $effect:ident {
            name: $name:literal,
            version: $version:literal,
            description: $description:literal,
            tail_seconds: $tail:literal,
            max_channels: $max_channels:literal $(,)?
        }
        params {
            $( $id:ident : { $($body:tt)* } ),* $(,)?
        }
        $(
            data {
                $( $did:ident : {
                    name: $dname:literal,
                    max_channels: $dch:literal,
                    max_seconds: $dsec:literal $(,)?
                } ),* $(,)?
            }
        )?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        $vis struct $params {
            $(
                #[doc = $crate::__param_doc!($($body)*)]
                pub $id: $crate::__param_type!($($body)*),
            )*
        }

        impl ::core::default::Default for $params {
            fn default() -> Self {
                let mut p = $params {
                    $( $id: $crate::descriptor::ParamValue::ZERO, )*
                };
                for (i, spec) in <Self as $crate::Params>::SPECS.iter().enumerate() {
                    $crate::Params::set(&mut p, i, spec.default);
                }
                p
            }
        }

        impl $crate::Params for $params {
            const INFO: $crate::EffectInfo = $crate::EffectInfo {
                name: $name,
                version: $version,
                description: $description,
                tail_seconds: $tail as f32,
                tail_seconds_text: stringify!($tail),
                max_channels: $max_channels,
                data: &[
                    $($(
                        $crate::DataSpec {
                            id: $crate::descriptor::strip_raw(stringify!($did)),
                            name: $dname,
                            max_channels: $dch,
                            max_seconds: $dsec as f32,
                            max_seconds_text: stringify!($dsec),
                        },
                    )*)?
                ],
            };
            const SPECS: &'static [$crate::ParamSpec] = &[
                $( $crate::__param_spec!($id, $($body)*), )*
            ];
            const DESCRIPTOR: &'static str = {
                const LEN: usize = $crate::descriptor::descriptor_len(
                    &<$params as $crate::Params>::INFO,
                    <$params as $crate::Params>::SPECS,
                );
                const BYTES: &[u8] = &$crate::descriptor::descriptor_bytes::<LEN>(
                    &<$params as $crate::Params>::INFO,
                    <$params as $crate::Params>::SPECS,
                );
                $crate::descriptor::descriptor_str(BYTES)
            };
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn set(&mut self, index: usize, value: f32) -> bool {
                let mut i = 0usize;
                $(
                    if i == index {
                        self.$id = $crate::descriptor::ParamValue::from_f32(value);
                        return true;
                    }
                    i += 1;
                )*
                false
            }
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn get(&self, index: usize) -> ::core::option::Option<f32> {
                let mut i = 0usize;
                $(
                    if i == index {
                        return ::core::option::Option::Some(
                            $crate::descriptor::ParamValue::to_f32(self.$id),
                        );
                    }
                    i += 1;
                )*
                ::core::option::Option::None
            }
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const LEN: usize = <$params as $crate::Params>::DESCRIPTOR.len();

            #[unsafe(link_section = "sluice_effect")]
            #[used]
            static SLUICE_EFFECT: [u8; LEN] = $crate::descriptor::descriptor_bytes::<LEN>(
                &<$params as $crate::Params>::INFO,
                <$params as $crate::Params>::SPECS,
            );

            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_init(sample_rate: i32, channels: i32, max_frames: i32) -> i32 {
                $crate::wasm::init::<$effect, $params>(sample_rate, channels, max_frames)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_data(slot: i32, channels: i32, frames: i32) -> i32 {
                $crate::wasm::data::<$params>(slot, channels, frames)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_buffer(channel: i32) -> i32 {
                $crate::wasm::buffer::<$effect>(channel)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_set_param(index: i32, value: f32) -> i32 {
                $crate::wasm::set_param::<$effect>(index, value)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_process(frames: i32) -> i32 {
                $crate::wasm::process::<$effect>(frames)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_reset() {
                $crate::wasm::reset::<$effect>()
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn sluice_latency() -> i32 {
                $crate::wasm::latency::<$effect>()
            }
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __param_type {
    (name: $n:literal, unit: $u:literal, min: $min:literal, max: $max:literal, default: $d:literal $(,)?) => {
        f32
    };
    (name: $n:literal, $(unit: $u:literal,)? choices: [$($c:literal),+ $(,)?], default: $d:literal $(,)?) => {
        usize
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __param_doc {
    (name: $n:literal, unit: $u:literal, min: $min:literal, max: $max:literal, default: $d:literal $(,)?) => {
        concat!($n, " (", $u, "): ", stringify!($min), " to ", stringify!($max), ", default ", stringify!($d), ".")
    };
    (name: $n:literal, $(unit: $u:literal,)? choices: [$($c:literal),+ $(,)?], default: $d:literal $(,)?) => {
        concat!($n, ": index into [", $($c, " ",)+ "], default ", $d, ".")
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __param_spec {
    ($id:ident, name: $n:literal, unit: $u:literal, min: $min:literal, max: $max:literal, default: $d:literal $(,)?) => {
        $crate::ParamSpec::continuous(
            $crate::descriptor::strip_raw(stringify!($id)),
            $n,
            $u,
            $min as f32,
            $max as f32,
            $d as f32,
            [stringify!($min), stringify!($max), stringify!($d)],
        )
    };
    ($id:ident, name: $n:literal, $(unit: $u:literal,)? choices: [$($c:literal),+ $(,)?], default: $d:literal $(,)?) => {
        $crate::ParamSpec::choice($crate::descriptor::strip_raw(stringify!($id)), $n, $crate::__unit!($($u)?), &[$($c),+], $d)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __unit {
    () => {
        ""
    };
    ($u:literal) => {
        $u
    };
}

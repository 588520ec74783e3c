// NAME: a Sluice effect in AssemblyScript, written against the effect ABI (ABI.md) directly:
// the sluice_* exports below, the channel buffers taken once in sluice_init, no imports. It
// starts as a gain with a 20 ms ramp (the parameter gain_db, index 0, -96 to 24 dB); change
// the processing and descriptor.json together (the descriptor's params are what
// sluice_set_param's index counts).

const OK: i32 = 0;
const ERR_SAMPLE_RATE: i32 = 1;
const ERR_CHANNELS: i32 = 2;
const ERR_FRAMES: i32 = 3;
const ERR_MEMORY: i32 = 4;
const ERR_STATE: i32 = 5;
const ERR_PARAM_INDEX: i32 = 6;
const ERR_PARAM_VALUE: i32 = 7;

const MAX_CHANNELS: i32 = 8;
const MAX_FRAMES: i32 = 65536;
const RAMP_MS: i32 = 20;

let ready = false;
let channelCount: i32 = 0;
let framesMax: i32 = 0;
// Floats between one channel's buffer and the next (a multiple of 4: 16-byte aligned).
let stride: i32 = 0;
let buffers: usize = 0;

let gain: f32 = 1.0;
let target: f32 = 1.0;
let step: f32 = 0.0;
let rampLeft: i32 = 0;
let rampFrames: i32 = 960;

export function sluice_init(sampleRate: i32, channels: i32, maxFrames: i32): i32 {
  if (ready) return ERR_STATE;
  if (sampleRate < 8000 || sampleRate > 768000) return ERR_SAMPLE_RATE;
  if (channels < 1 || channels > MAX_CHANNELS) return ERR_CHANNELS;
  if (maxFrames < 1 || maxFrames > MAX_FRAMES) return ERR_FRAMES;
  channelCount = channels;
  framesMax = maxFrames;
  stride = (maxFrames + 3) & ~3;
  // All the memory the effect will use, now (the stub runtime aligns to 16 bytes).
  buffers = heap.alloc(<usize>stride * <usize>channels * 4);
  if (buffers == 0) return ERR_MEMORY;
  rampFrames = max(1, (sampleRate * RAMP_MS) / 1000);
  ready = true;
  return OK;
}

export function sluice_buffer(channel: i32): i32 {
  if (!ready || channel < 0 || channel >= channelCount) return 0;
  return <i32>(buffers + <usize>channel * <usize>stride * 4);
}

export function sluice_set_param(index: i32, value: f32): i32 {
  if (!ready) return ERR_STATE;
  if (index != 0) return ERR_PARAM_INDEX;
  if (!isFinite(value)) return ERR_PARAM_VALUE;
  const db = min(max(value, <f32>-96.0), <f32>24.0);
  target = Mathf.pow(10.0, db / 20.0);
  step = (target - gain) / <f32>rampFrames;
  rampLeft = rampFrames;
  return OK;
}

export function sluice_reset(): void {
  gain = target;
  rampLeft = 0;
}

export function sluice_process(frames: i32): i32 {
  if (!ready) return ERR_STATE;
  if (frames < 0 || frames > framesMax) return ERR_FRAMES;
  for (let i = 0; i < frames; i++) {
    if (rampLeft > 0) {
      rampLeft--;
      gain = rampLeft == 0 ? target : gain + step;
    }
    for (let c = 0; c < channelCount; c++) {
      const at = buffers + (<usize>c * <usize>stride + <usize>i) * 4;
      store<f32>(at, load<f32>(at) * gain);
    }
  }
  return OK;
}

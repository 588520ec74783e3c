/*
 * c-gain: a gain effect written in C straight against effects/ABI.md, without the Rust SDK.
 * It shows what any language has to provide: a descriptor custom section, the sluice_*
 * exports, memory taken with memory.grow in sluice_init, no imports.
 *
 * Build: ./build.sh (clang --target=wasm32 -nostdlib, see there). The descriptor is in
 * descriptor.json. One parameter, gain_db (-96..24 dB, index 0),
 * applied to every channel with a 20 ms linear ramp on changes.
 */

#define MAX_CHANNELS 8
#define MAX_FRAMES 65536
#define RAMP_MS 20

enum {
    OK = 0,
    ERR_SAMPLE_RATE = 1,
    ERR_CHANNELS = 2,
    ERR_FRAMES = 3,
    ERR_MEMORY = 4,
    ERR_STATE = 5,
    ERR_PARAM_INDEX = 6,
    ERR_PARAM_VALUE = 7,
};

/* The descriptor: descriptor.json, as the custom section "sluice_effect". The assembler turns a
 * section named ".custom_section.NAME" into a custom section NAME (clang 14 does not do that for
 * a C variable placed in such a section: it becomes a data segment, so this is written at the
 * assembler level). The path is relative to the directory clang runs in (build.sh: here). */
__asm__(".section .custom_section.sluice_effect,\"\",@\n"
        ".incbin \"descriptor.json\"\n"
        ".text\n");

static int initialised;
static int channel_count;
static int frames_max;
static int stride; /* floats between channel buffers, a multiple of 4 (16 bytes) */
static float *buffers; /* channel_count * stride floats, from memory.grow */
static float gain_db;
static float gain, target, step;
static int ramp_left, ramp_frames;

/* 2^x for |x| < 32, exact enough for gains: 2^floor(x) from the exponent bits times a
 * polynomial for 2^frac (relative error < 2e-7). */
static float exp2_approx(float x) {
    int i = (int)x;
    if ((float)i > x) {
        i -= 1;
    }
    float f = x - (float)i;
    float p = 1.0f + f * (0.69314718f + f * (0.24022652f + f * (0.05550411f +
              f * (0.00961813f + f * (0.00133336f + f * 0.00015469f)))));
    union { float f; unsigned u; } bits = { .f = 1.0f };
    bits.u = (unsigned)((i + 127) << 23);
    return p * bits.f;
}

static float db_to_gain(float db) {
    /* 10^(db/20) = 2^(db * log2(10) / 20) */
    return exp2_approx(db * 0.16609640f);
}

__attribute__((export_name("sluice_init")))
int sluice_init(int sample_rate, int channels, int max_frames) {
    if (initialised) {
        return ERR_STATE;
    }
    if (sample_rate < 8000 || sample_rate > 768000) {
        return ERR_SAMPLE_RATE;
    }
    if (channels < 1 || channels > MAX_CHANNELS) {
        return ERR_CHANNELS;
    }
    if (max_frames < 1 || max_frames > MAX_FRAMES) {
        return ERR_FRAMES;
    }
    stride = (max_frames + 3) & ~3;
    unsigned long bytes = (unsigned long)channels * (unsigned long)stride * 4ul;
    unsigned long pages = (bytes + 65535ul) / 65536ul;
    unsigned long old = __builtin_wasm_memory_grow(0, pages);
    if (old == (unsigned long)-1) {
        return ERR_MEMORY;
    }
    /* Fresh pages past the old end: zeroed, page-aligned, used by nothing else. */
    buffers = (float *)(old * 65536ul);
    channel_count = channels;
    frames_max = max_frames;
    ramp_frames = sample_rate * RAMP_MS / 1000;
    gain_db = 0.0f;
    gain = target = 1.0f;
    ramp_left = 0;
    initialised = 1;
    return OK;
}

__attribute__((export_name("sluice_buffer")))
int sluice_buffer(int channel) {
    if (!initialised || channel < 0 || channel >= channel_count) {
        return 0;
    }
    return (int)(unsigned long)(buffers + channel * stride);
}

__attribute__((export_name("sluice_set_param")))
int sluice_set_param(int index, float value) {
    if (!initialised) {
        return ERR_STATE;
    }
    if (index != 0) {
        return ERR_PARAM_INDEX;
    }
    if (value != value || value - value != 0.0f) { /* NaN or infinite */
        return ERR_PARAM_VALUE;
    }
    gain_db = value < -96.0f ? -96.0f : value > 24.0f ? 24.0f : value;
    float t = db_to_gain(gain_db);
    if (t != target) {
        target = t;
        ramp_left = ramp_frames;
        step = (target - gain) / (float)ramp_frames;
    }
    return OK;
}

__attribute__((export_name("sluice_process")))
int sluice_process(int frames) {
    if (!initialised) {
        return ERR_STATE;
    }
    if (frames < 0 || frames > frames_max) {
        return ERR_FRAMES;
    }
    for (int i = 0; i < frames; i++) {
        if (ramp_left > 0) {
            ramp_left -= 1;
            gain = ramp_left == 0 ? target : gain + step;
        }
        for (int c = 0; c < channel_count; c++) {
            buffers[c * stride + i] *= gain;
        }
    }
    return OK;
}

__attribute__((export_name("sluice_reset")))
void sluice_reset(void) {
    gain = target;
    ramp_left = 0;
}

__attribute__((export_name("sluice_latency")))
int sluice_latency(void) {
    return 0;
}

/*
 * Sluice's effect ABI (ABI.md) around the C that `faust -lang c -cn fx` writes (dsp.c): the
 * sluice_* exports, the descriptor (descriptor.json, written by describe.c) as the module's
 * sluice_effect section, and the mapping of the host's channels onto the DSP's inputs and
 * outputs. A DSP with one input and one output runs once per channel; another runs once, its
 * inputs fed from the channels in turn (a mono file through a stereo reverb feeds both) and its
 * outputs mixed back onto them (each channel the mean of the outputs that fall on it).
 */
#include <stdlib.h>
#include <string.h>
#include "sluice_faust.h"
#include "dsp.c"

#define EXPORT(name) __attribute__((export_name(name)))
#define MAX_CHANNELS 8
#define MAX_FRAMES 65536
#define MAX_PORTS 64

enum { OK = 0, ERR_SAMPLE_RATE = 1, ERR_CHANNELS = 2, ERR_FRAMES = 3, ERR_MEMORY = 4,
       ERR_STATE = 5, ERR_PARAM_INDEX = 6, ERR_PARAM_VALUE = 7, ERR_UNSUPPORTED = 8 };

__asm__(".section .custom_section.sluice_effect,\"\",@\n"
        ".incbin \"descriptor.json\"\n"
        ".text\n");

static int ready, channels, frames_max, n_in, n_out, n_dsp;
static fx *dsps[MAX_CHANNELS];
static SluiceControls controls[MAX_CHANNELS];
static float *bufs[MAX_CHANNELS];
static float *outs[MAX_PORTS];
static float *ins[MAX_PORTS];

static float *block(void) { return aligned_alloc(16, sizeof(float) * (size_t)frames_max); }

EXPORT("sluice_init") int sluice_init(int sample_rate, int channel_count, int max_frames) {
    if (ready) return ERR_STATE;
    if (sample_rate < 8000 || sample_rate > 768000) return ERR_SAMPLE_RATE;
    if (channel_count < 1 || channel_count > MAX_CHANNELS) return ERR_CHANNELS;
    if (max_frames < 1 || max_frames > MAX_FRAMES) return ERR_FRAMES;
    channels = channel_count;
    frames_max = max_frames;
    fx *probe = newfx();
    if (!probe) return ERR_MEMORY;
    n_in = getNumInputsfx(probe);
    n_out = getNumOutputsfx(probe);
    if (n_out < 1 || n_in > MAX_PORTS || n_out > MAX_PORTS) return ERR_UNSUPPORTED;
    n_dsp = (n_in == 1 && n_out == 1) ? channels : 1;
    dsps[0] = probe;
    for (int k = 1; k < n_dsp; k++)
        if (!(dsps[k] = newfx())) return ERR_MEMORY;
    for (int k = 0; k < n_dsp; k++) {
        initfx(dsps[k], sample_rate);
        UIGlue ui = sluice_ui(&controls[k]);
        buildUserInterfacefx(dsps[k], &ui);
    }
    for (int c = 0; c < channels; c++)
        if (!(bufs[c] = block())) return ERR_MEMORY;
    for (int j = 0; j < n_out; j++)
        if (!(outs[j] = block())) return ERR_MEMORY;
    ready = 1;
    return OK;
}

EXPORT("sluice_buffer") int sluice_buffer(int channel) {
    if (!ready || channel < 0 || channel >= channels) return 0;
    return (int)(size_t)bufs[channel];
}

EXPORT("sluice_set_param") int sluice_set_param(int index, float value) {
    if (!ready) return ERR_STATE;
    if (index < 0 || index >= controls[0].count) return ERR_PARAM_INDEX;
    if (value != value || value - value != 0.0f) return ERR_PARAM_VALUE;
    SluiceControl *c = &controls[0].c[index];
    if (value < c->min) value = c->min;
    if (value > c->max) value = c->max;
    for (int k = 0; k < n_dsp; k++) *controls[k].c[index].zone = value;
    return OK;
}

EXPORT("sluice_reset") void sluice_reset(void) {
    for (int k = 0; ready && k < n_dsp; k++) instanceClearfx(dsps[k]);
}

EXPORT("sluice_process") int sluice_process(int frames) {
    if (!ready) return ERR_STATE;
    if (frames < 0 || frames > frames_max) return ERR_FRAMES;
    if (frames == 0) return OK;
    if (n_dsp > 1) {
        for (int c = 0; c < channels; c++) {
            computefx(dsps[c], frames, &bufs[c], &outs[0]);
            memcpy(bufs[c], outs[0], sizeof(float) * (size_t)frames);
        }
        return OK;
    }
    for (int j = 0; j < n_in; j++) ins[j] = bufs[j % channels];
    computefx(dsps[0], frames, ins, outs);
    for (int c = 0; c < channels; c++) {
        int n = 0;
        for (int j = c; j < n_out; j += channels) n++;
        if (n == 0) {
            memcpy(bufs[c], outs[c % n_out], sizeof(float) * (size_t)frames);
            continue;
        }
        float scale = 1.0f / (float)n;
        for (int i = 0; i < frames; i++) {
            float s = 0.0f;
            for (int j = c; j < n_out; j += channels) s += outs[j][i];
            bufs[c][i] = s * scale;
        }
    }
    return OK;
}

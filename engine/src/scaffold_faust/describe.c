/*
 * Prints the Sluice descriptor (JSON, ABI.md section 2) of the DSP in dsp.c: its sliders,
 * buttons and number entries as parameters (ids from their labels, `[unit:...]` as units), and
 * the metadata `version`, `description` and `tail_seconds` when the .dsp declares them.
 * Built and run on the build machine by the Makefile: ./describe NAME > descriptor.json
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "sluice_faust.h"
#include "dsp.c"

static const char *version = "0.1.0", *description = "", *tail = "0";

static void meta(void *m, const char *key, const char *value) {
    (void)m;
    if (!strcmp(key, "version")) version = value;
    else if (!strcmp(key, "description")) description = value;
    else if (!strcmp(key, "tail_seconds")) tail = value;
}

static void string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s >= 0x20 && *s != 0x7f) putchar(*s);
    }
    putchar('"');
}

/* snake_case from a label: letters and digits kept (lower case), runs of anything else one
 * underscore; a leading digit gets `p_`; a repeated id gets `_2`, `_3`... */
static void id_of(const char *label, char *out, size_t size, char ids[][72], int k) {
    size_t n = 0;
    int gap = 0;
    for (const char *s = label; *s && n + 2 < size; s++) {
        if (isalnum((unsigned char)*s)) {
            if (gap && n > 0) out[n++] = '_';
            out[n++] = (char)tolower((unsigned char)*s);
            gap = 0;
        } else gap = 1;
    }
    out[n] = 0;
    if (n == 0) snprintf(out, size, "param");
    if (isdigit((unsigned char)out[0])) {
        char t[72];
        snprintf(t, sizeof t, "p_%s", out);
        snprintf(out, size, "%s", t);
    }
    char base[72];
    snprintf(base, sizeof base, "%s", out);
    for (int again = 2;; again++) {
        int clash = 0;
        for (int i = 0; i < k; i++) clash |= !strcmp(ids[i], out);
        if (!clash) break;
        snprintf(out, size, "%.60s_%d", base, again);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME\n", argv[0]);
        return 2;
    }
    fx *d = newfx();
    SluiceControls cs;
    memset(&cs, 0, sizeof cs);
    UIGlue ui = sluice_ui(&cs);
    buildUserInterfacefx(d, &ui);
    MetaGlue m = {0, meta};
    metadatafx(&m);
    static char ids[SLUICE_MAX_PARAMS][72];
    printf("{\"abi\":1,\"name\":");
    string(argv[1]);
    printf(",\"version\":");
    string(version);
    printf(",\"description\":");
    string(description);
    printf(",\"tail_seconds\":%s,\"max_channels\":8,\"params\":[", tail);
    for (int k = 0; k < cs.count; k++) {
        SluiceControl *c = &cs.c[k];
        id_of(c->label, ids[k], sizeof ids[k], ids, k);
        printf("%s{\"id\":\"%s\",\"name\":", k ? "," : "", ids[k]);
        char name[65];
        snprintf(name, sizeof name, "%s", c->label[0] ? c->label : ids[k]);
        string(name);
        printf(",\"unit\":");
        string(c->unit);
        printf(",\"min\":%.8g,\"max\":%.8g,\"default\":%.8g}", c->min, c->max, c->init);
    }
    printf("]}\n");
    return 0;
}

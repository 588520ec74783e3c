/*
 * What the C code `faust -lang c` writes expects from its host: the user-interface and
 * metadata callback tables it calls to declare its controls and its metadata. Written for
 * Sluice's glue (sluice_glue.c, describe.c); the member names are the ones Faust's generated
 * code uses.
 */
#ifndef SLUICE_FAUST_H
#define SLUICE_FAUST_H

#ifndef FAUSTFLOAT
#define FAUSTFLOAT float
#endif

struct Soundfile;

typedef struct {
    void *uiInterface;
    void (*openTabBox)(void *ui, const char *label);
    void (*openHorizontalBox)(void *ui, const char *label);
    void (*openVerticalBox)(void *ui, const char *label);
    void (*closeBox)(void *ui);
    void (*addButton)(void *ui, const char *label, FAUSTFLOAT *zone);
    void (*addCheckButton)(void *ui, const char *label, FAUSTFLOAT *zone);
    void (*addVerticalSlider)(void *ui, const char *label, FAUSTFLOAT *zone, FAUSTFLOAT init,
                              FAUSTFLOAT min, FAUSTFLOAT max, FAUSTFLOAT step);
    void (*addHorizontalSlider)(void *ui, const char *label, FAUSTFLOAT *zone, FAUSTFLOAT init,
                                FAUSTFLOAT min, FAUSTFLOAT max, FAUSTFLOAT step);
    void (*addNumEntry)(void *ui, const char *label, FAUSTFLOAT *zone, FAUSTFLOAT init,
                        FAUSTFLOAT min, FAUSTFLOAT max, FAUSTFLOAT step);
    void (*addHorizontalBargraph)(void *ui, const char *label, FAUSTFLOAT *zone, FAUSTFLOAT min,
                                  FAUSTFLOAT max);
    void (*addVerticalBargraph)(void *ui, const char *label, FAUSTFLOAT *zone, FAUSTFLOAT min,
                                FAUSTFLOAT max);
    void (*addSoundfile)(void *ui, const char *label, const char *url, struct Soundfile **sf);
    void (*declare)(void *ui, FAUSTFLOAT *zone, const char *key, const char *value);
} UIGlue;

typedef struct {
    void *metaInterface;
    void (*declare)(void *meta, const char *key, const char *value);
} MetaGlue;

/* The controls of a DSP in the order it declares them: Sluice's parameters. */
#define SLUICE_MAX_PARAMS 64

typedef struct {
    const char *label;
    const char *unit;
    FAUSTFLOAT *zone;
    float init, min, max;
} SluiceControl;

typedef struct {
    SluiceControl c[SLUICE_MAX_PARAMS];
    int count;
    const char *unit; /* from a `[unit:...]` declared before the control */
} SluiceControls;

static void sluice_box(void *ui, const char *label) { (void)ui; (void)label; }
static void sluice_close(void *ui) { (void)ui; }
static void sluice_sound(void *ui, const char *l, const char *u, struct Soundfile **s) {
    (void)ui; (void)l; (void)u; (void)s;
}
static void sluice_bargraph(void *ui, const char *l, FAUSTFLOAT *z, FAUSTFLOAT mn, FAUSTFLOAT mx) {
    (void)ui; (void)l; (void)z; (void)mn; (void)mx;
}
static void sluice_add(SluiceControls *cs, const char *label, FAUSTFLOAT *zone, float init,
                       float min, float max) {
    if (cs->count < SLUICE_MAX_PARAMS) {
        SluiceControl *c = &cs->c[cs->count++];
        c->label = label;
        c->unit = cs->unit ? cs->unit : "";
        c->zone = zone;
        c->init = init;
        c->min = min;
        c->max = max;
    }
    cs->unit = 0;
}
static void sluice_slider(void *ui, const char *label, FAUSTFLOAT *zone, FAUSTFLOAT init,
                          FAUSTFLOAT min, FAUSTFLOAT max, FAUSTFLOAT step) {
    (void)step;
    sluice_add((SluiceControls *)ui, label, zone, init, min, max);
}
static void sluice_button(void *ui, const char *label, FAUSTFLOAT *zone) {
    sluice_add((SluiceControls *)ui, label, zone, 0, 0, 1);
}
static void sluice_declare(void *ui, FAUSTFLOAT *zone, const char *key, const char *value) {
    (void)zone;
    const char *u = "unit";
    int i = 0;
    while (u[i] && key[i] == u[i]) i++;
    if (!u[i] && !key[i]) ((SluiceControls *)ui)->unit = value;
}
static UIGlue sluice_ui(SluiceControls *cs) {
    UIGlue g;
    g.uiInterface = cs;
    g.openTabBox = sluice_box;
    g.openHorizontalBox = sluice_box;
    g.openVerticalBox = sluice_box;
    g.closeBox = sluice_close;
    g.addButton = sluice_button;
    g.addCheckButton = sluice_button;
    g.addVerticalSlider = sluice_slider;
    g.addHorizontalSlider = sluice_slider;
    g.addNumEntry = sluice_slider;
    g.addHorizontalBargraph = sluice_bargraph;
    g.addVerticalBargraph = sluice_bargraph;
    g.addSoundfile = sluice_sound;
    g.declare = sluice_declare;
    return g;
}

#endif

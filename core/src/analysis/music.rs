//! Tempo and key share one analyzer: both read the mean of all channels, mixed once.

use super::{AnalysisReport, Analyzer, KeySection, TempoSection, key, mono_into, tempo};

/// Tempo and key, both from the mean of all channels, which is mixed once for the two.
pub(super) struct MusicA {
    pub(super) tempo: Option<tempo::TempoAnalyzer>,
    pub(super) key: Option<key::KeyAnalyzer>,
    pub(super) mono: Vec<f32>,
}

impl Analyzer for MusicA {
    fn feed(&mut self, planes: &[&[f32]]) {
        mono_into(planes, &mut self.mono);
        if let Some(t) = &mut self.tempo {
            t.feed(&self.mono);
        }
        if let Some(k) = &mut self.key {
            k.feed(&self.mono);
        }
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        if let Some(t) = self.tempo {
            r.tempo = Some(match t.finish() {
                Some(t) => TempoSection {
                    bpm: Some(t.bpm),
                    confidence: Some(t.confidence),
                    alternative_bpm: t.alternative_bpm,
                    alternative_confidence: t.alternative_confidence,
                },
                None => TempoSection::default(),
            });
        }
        if let Some(k) = self.key {
            r.key = Some(match k.finish() {
                Some(k) => KeySection {
                    key: Some(k.name),
                    tonic: Some(k.tonic_name),
                    mode: Some(
                        match k.mode {
                            key::Mode::Major => "major",
                            key::Mode::Minor => "minor",
                        }
                        .to_string(),
                    ),
                    confidence: Some(k.confidence),
                    tuning_cents: Some(k.tuning_cents),
                },
                None => KeySection::default(),
            });
        }
    }
    fn cost(&self) -> f64 {
        let on = |b: bool| f64::from(u8::from(b));
        6.0 * on(self.tempo.is_some()) + 11.0 * on(self.key.is_some())
    }
    fn name(&self) -> &'static str {
        "tempo_key"
    }
}

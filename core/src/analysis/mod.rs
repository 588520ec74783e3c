//! Analysis: streaming analyzers that one decode pass feeds, and the report they fill.

pub mod loudness;
pub mod truepeak;

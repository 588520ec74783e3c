//! Cross-component tests of Sluice live in `tests/tests/`. They need the host's watch loop and the
//! plugin, which arrive with their issues; until then the input side is tested in `core/tests`
//! and the `sluice` command line in `host/tests`.

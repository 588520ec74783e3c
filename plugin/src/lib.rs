//! Sluice Meter, the CLAP + VST3 plugin, lives here.
//!
//! Nothing is built yet: this crate exists so the workspace has its final shape. The real-time
//! meter and recorder engine, its parameters, the nice-plug exports and the editor arrive with
//! their own issues; until then this crate exports no plugin and claims no functionality.

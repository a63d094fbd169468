//! (to be written) The synchronous trading engine.

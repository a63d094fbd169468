//! (to be written) The strategy language: strategies/*.toml parsed, compiled and evaluated.

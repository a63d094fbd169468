//! Integration tests: live.

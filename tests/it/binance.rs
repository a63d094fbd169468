//! Integration tests: binance.

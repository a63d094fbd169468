//! Integration tests: backtest.

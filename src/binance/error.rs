//! (to be written) Binance error.

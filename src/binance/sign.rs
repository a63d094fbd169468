//! (to be written) Binance sign.

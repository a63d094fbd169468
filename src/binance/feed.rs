//! (to be written) Binance feed.

//! (to be written) Binance rest.

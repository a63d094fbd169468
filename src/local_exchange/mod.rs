//! (to be written) A local exchange that speaks Binance USD-M's protocol on 127.0.0.1.

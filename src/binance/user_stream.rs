//! (to be written) Binance user_stream.

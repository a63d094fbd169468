//! (to be written) Binance user_wire.

//! (to be written) Binance rest_wire.

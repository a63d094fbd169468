//! The Binance edge: every piece of exchange JSON (wire types), request signing, the REST client and the websocket
//! feeds. Nothing outside this module (and the local exchange, which speaks the same wire types from the server side)
//! sees Binance JSON.

pub mod backoff;
pub mod compat_wire;
pub mod error;
pub mod feed;
pub mod market_wire;
pub mod rest;
pub mod rest_wire;
pub mod routing;
pub mod sign;
pub mod user_stream;
pub mod user_wire;
pub mod wire;

pub use error::BinanceError;
pub use sign::Credentials;
pub use wire::WireError;

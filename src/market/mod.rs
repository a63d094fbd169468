//! Market data: domain events and the readers that produce them from files.

pub mod event;

pub use event::{Liquidation, Mark, MarketEvent, MarketKind, Quote, Trade};

//! Market data: domain events and the readers that produce them from files (recordings of websocket frames,
//! the generic quote CSV, Binance public-data CSVs), merged by timestamp; the recording writer; a tick generator.

pub mod binance_csv;
pub mod detect;
pub mod error;
pub mod event;
pub mod gen;
pub mod lines;
pub mod num;
pub mod quote_csv;
pub mod reader;
pub mod recording;

pub use detect::{Format, InputSpec, QUOTE_CSV_HEADER};
pub use error::DataError;
pub use event::{Liquidation, Mark, MarketEvent, MarketKind, Quote, Trade};
pub use gen::generate_ticks;
pub use reader::{open, InputInfo, MarketReader};
pub use recording::{FrameReader, RecordWriter};

//! Time as an input: the clock live tasks stamp frames with (the wall clock, a replay's virtual clock, or a
//! test's manual one). The engine itself never reads a clock; it takes `now` from its events.

use std::sync::Arc;

use crate::model::TsNs;

/// Local receive-time source (ns since the epoch). Live: [`system_clock`]; tests: anything deterministic.
pub type Clock = Arc<dyn Fn() -> TsNs + Send + Sync>;

/// Wall-clock time in ns since the Unix epoch.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as TsNs)
            .unwrap_or(0)
    })
}

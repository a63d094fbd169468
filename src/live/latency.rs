//! Frame-received → order-request-written latency inside the bot, as a histogram (HdrHistogram, 3 significant
//! digits from 1 ns). It starts when the feed task gets the websocket frame (before parsing) and ends just before
//! the signed order request is handed to the HTTP client; the network is not in it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

/// A shared latency histogram in nanoseconds.
#[derive(Clone)]
pub struct Latency {
    hist: Arc<Mutex<Histogram<u64>>>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// The latency figures of a live run.
#[derive(Clone, Default)]
pub struct Latencies {
    /// Frame received → order request written: everything in the bot, including the intent's store write (and its
    /// fsync when `storage.sync_intents`).
    pub total: Latency,
    /// The same without the intent's fsync: the bot's own processing (parse, engine, intent write, signing, task
    /// hops). Equal to `total` when the fsync overlaps the request.
    pub processing: Latency,
    /// The intents' fsyncs themselves, wherever they ran.
    pub fsync: Latency,
}

/// p50 / p99 / max of what was recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn new() -> Self {
        // 1 ns .. 60 s, 3 significant digits.
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).expect("histogram"));
        Latency {
            hist: Arc::new(Mutex::new(hist)),
        }
    }

    pub fn record(&self, d: Duration) {
        let ns = (d.as_nanos() as u64).max(1);
        if let Ok(mut h) = self.hist.lock() {
            let high = h.high();
            let _ = h.record(ns.min(high));
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let Ok(h) = self.hist.lock() else {
            return LatencySummary {
                count: 0,
                p50_us: 0.0,
                p99_us: 0.0,
                max_us: 0.0,
            };
        };
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let l = Latency::new();
        for i in 1..=100u64 {
            l.record(Duration::from_micros(i));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_us - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_us - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_us - 100.0).abs() < 0.1, "{s:?}");
    }
}

//! Frame-received → order-request-written latency inside the bot, as a histogram (HdrHistogram, 3 significant
//! digits from 1 ns). It starts when the feed task gets the websocket frame (before parsing) and ends just before
//! the signed order request is handed to the HTTP client; the network is not in it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// `total` cut into the stages of [`OrderStamps`].
    pub stages: Stages,
}

/// Where an order's frame-to-request time goes.
#[derive(Clone, Default)]
pub struct Stages {
    /// Frame received → the engine task takes the event: the frame's parse and the channel hop.
    pub to_engine: Latency,
    /// The engine's handling of the event up to its decision to place (`on_event`).
    pub decision: Latency,
    /// The intent's store write.
    pub intent: Latency,
    /// Intent written → signed request handed to the HTTP client (the intent's fsync excluded): hand-off to the
    /// sending side, query, timestamp and signature, the HTTP request.
    pub send: Latency,
}

/// The instants along one order's way, stamped on the order path (a clock read each, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct OrderStamps {
    /// The frame that decided the order came off the socket (before parsing).
    pub received: Instant,
    /// The engine task took the event.
    pub engine: Instant,
    /// The engine decided (its `on_event` returned with the order).
    pub decided: Instant,
    /// The intent is in the store (fsync excluded).
    pub intent: Instant,
}

impl Latencies {
    /// Records one order whose signed request was handed to the HTTP client at `written`; `fsync` = the intent's
    /// fsync when it ran on the order path (zero when it overlaps the request).
    pub fn record_order(&self, s: &OrderStamps, written: Instant, fsync: Duration) {
        let total = written.saturating_duration_since(s.received);
        self.total.record(total);
        self.processing.record(total.saturating_sub(fsync));
        self.stages
            .to_engine
            .record(s.engine.saturating_duration_since(s.received));
        self.stages
            .decision
            .record(s.decided.saturating_duration_since(s.engine));
        self.stages
            .intent
            .record(s.intent.saturating_duration_since(s.decided));
        self.stages.send.record(
            written
                .saturating_duration_since(s.intent)
                .saturating_sub(fsync),
        );
    }

    /// p50 / p99 / max per stage: to engine, decision, intent, send.
    pub fn stage_summaries(&self) -> StageSummaries {
        StageSummaries {
            to_engine: self.stages.to_engine.summary(),
            decision: self.stages.decision.summary(),
            intent: self.stages.intent.summary(),
            send: self.stages.send.summary(),
        }
    }
}

/// [`Stages`], summarised.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StageSummaries {
    pub to_engine: LatencySummary,
    pub decision: LatencySummary,
    pub intent: LatencySummary,
    pub send: LatencySummary,
}

/// p50 / p99 / max of what was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
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

    #[test]
    fn stages_add_up_to_the_total_without_the_fsync() {
        let l = Latencies::default();
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let s = OrderStamps {
            received: t0,
            engine: t0 + us(3),
            decided: t0 + us(10),
            intent: t0 + us(20),
        };
        l.record_order(&s, t0 + us(125), us(100));
        let st = l.stage_summaries();
        let near = |a: f64, b: f64| (a - b).abs() < 0.1;
        assert!(near(l.total.summary().p50_us, 125.0));
        assert!(near(l.processing.summary().p50_us, 25.0));
        assert!(near(st.to_engine.p50_us, 3.0), "{st:?}");
        assert!(near(st.decision.p50_us, 7.0), "{st:?}");
        assert!(near(st.intent.p50_us, 10.0), "{st:?}");
        assert!(near(st.send.p50_us, 5.0), "{st:?}");
    }
}

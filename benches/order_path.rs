//! The live order path without the network: a perp bookTicker frame parsed → the engine decides an entry → the
//! intent written to sled → the order signed and its request built and handed to the HTTP client (not sent).
//! Prints p50 / p99 of single orders besides criterion's figures (the live bound is on p99).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

use premia::binance::market_wire::{parse_frame, Frame};
use premia::binance::rest::{RestClient, RestConfig};
use premia::binance::Credentials;
use premia::config::{Config, DEFAULT_CONFIG};
use premia::engine::{Action, Engine, Event};
use premia::market::MarketEvent;
use premia::model::Venue;
use premia::store::{Durability, Store};

const STRATEGY: &str = r#"
name = "enter-on-every-quote"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "enter_long"
[order]
quantity = "0.002"
"#;

const SPOT: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"61790.00","B":"1.5","a":"61790.01","A":"0.3"}}"#;
const PERP: &str = r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#;

const T0: i64 = 1_723_161_256_000_000_000;

fn event(json: &str, venue: Venue, ts: i64) -> MarketEvent {
    match parse_frame(json, venue).expect("frame parses") {
        Frame::Market(kind) => MarketEvent { ts, kind },
        _ => panic!("a market frame"),
    }
}

/// An engine that has seen the spot quote: the next perp quote decides an entry.
fn primed_engine(config: &Config) -> Engine {
    let strategy = premia::strategy::parse_str(STRATEGY, "bench.toml").expect("strategy");
    let mut engine = Engine::new(strategy, config.engine_config("pmbench-"));
    engine.defer_journal(true);
    let mut out = Vec::new();
    engine.on_event(&Event::Market(event(SPOT, Venue::Spot, T0)), &mut out);
    engine
}

fn bench(c: &mut Criterion) {
    let config = Config::parse(DEFAULT_CONFIG, "default").expect("default config");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_with(&dir.path().join("state"), Durability::Deferred).expect("store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    // Nothing listens there: the request is built, signed and handed over, never polled.
    let rest = RestClient::new(
        RestConfig::new("http://127.0.0.1:9"),
        Credentials::new("bench-key", "bench-secret"),
    )
    .expect("client");
    let mut buf = Vec::with_capacity(512);
    let mut actions: Vec<Action> = Vec::with_capacity(16);
    let mut samples: Vec<Duration> = Vec::new();
    c.bench_function("frame_engine_intent_signed_request", |b| {
        b.iter_batched(
            || primed_engine(&config),
            |mut engine| {
                let t = Instant::now();
                let ev = event(PERP, Venue::Perp, T0 + 1_000_000);
                engine.on_event(&Event::Market(ev), &mut actions);
                let mut placed = 0;
                for a in actions.drain(..) {
                    if let Action::Place(rec) = a {
                        premia::persist::persist_intent(&store, &rec, &mut buf).expect("intent");
                        let started = rest.start_order(&rec.request).expect("signed");
                        std::hint::black_box(&started);
                        placed += 1;
                    }
                }
                samples.push(t.elapsed());
                assert_eq!(placed, 1, "the frame decides one order");
                engine
            },
            BatchSize::PerIteration,
        )
    });
    samples.sort();
    if !samples.is_empty() {
        let q = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "order path, {} orders: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            samples.len(),
            q(0.5).as_secs_f64() * 1e6,
            q(0.99).as_secs_f64() * 1e6,
            q(1.0).as_secs_f64() * 1e6
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

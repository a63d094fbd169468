//! Criterion benchmarks of the per-event path: quote-CSV parsing, parse + engine + rules with the shipped
//! premium-divergence strategy (the whole backtest), and the engine alone on events parsed beforehand.

use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use premia::config::{Config, DEFAULT_CONFIG};

const TICKS: u64 = 200_000;

fn ticks_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    let mut buf = Vec::new();
    premia::market::gen::generate_ticks(TICKS, 7, &mut buf).expect("generate ticks");
    f.write_all(&buf).expect("write ticks");
    f
}

fn bench(c: &mut Criterion) {
    let file = ticks_file();
    let path = file.path().display().to_string();
    let config = Config::parse(DEFAULT_CONFIG, "default").expect("default config");
    let strategy = premia::strategy::load_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/strategies/premium_divergence.toml"
    )))
    .expect("strategy");

    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(TICKS));
    g.sample_size(10);
    g.bench_function("parse_quote_csv", |b| {
        b.iter(|| {
            let reader = premia::market::open(std::slice::from_ref(&path)).expect("open");
            let mut n = 0u64;
            for ev in reader {
                n += u64::from(ev.is_ok());
            }
            assert_eq!(n, TICKS);
        })
    });
    g.bench_function("backtest_parse_engine_rules_sim", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let result = premia::backtest::run(premia::backtest::BacktestOptions {
                data: vec![path.clone()],
                strategy: strategy.clone(),
                config: config.clone(),
                state_dir: dir.path().join("state"),
                fills_csv: None,
                progress: false,
            })
            .expect("backtest");
            assert_eq!(result.events, TICKS);
        })
    });
    // The engine alone (signals, rules, risk, decisions, simulated fills), on events parsed beforehand.
    let events: Vec<premia::market::MarketEvent> =
        premia::market::open(std::slice::from_ref(&path))
            .expect("open")
            .map(|e| e.expect("event"))
            .collect();
    g.bench_function("engine_rules_sim_only", |b| {
        b.iter(|| {
            use premia::engine::{Engine, Event};
            let mut engine = Engine::new(strategy.clone(), config.engine_config("bench-"));
            let mut sim = premia::sim::SimExchange::new(
                config.filters.clone(),
                config.fees.taker_rate,
                config.fees.maker_rate,
            );
            let (mut actions, mut updates) = (Vec::new(), Vec::new());
            let mut orders = 0u64;
            for ev in &events {
                sim.on_market(ev, &mut updates);
                for u in updates.drain(..) {
                    engine.on_event(&Event::Order(u), &mut actions);
                }
                engine.on_market_event(ev, &mut actions);
                while !actions.is_empty() {
                    for a in std::mem::take(&mut actions) {
                        if let premia::engine::Action::Place(rec) = &a {
                            orders += 1;
                            sim.submit(rec, ev.ts, &mut updates);
                        }
                    }
                    for u in updates.drain(..) {
                        engine.on_event(&Event::Order(u), &mut actions);
                    }
                }
            }
            assert!(orders > 0);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Fuzzing (proptest, a bounded number of cases): the frame parsers, the expression parser, and the config and
//! strategy loaders get random bytes and mutated real inputs; none may panic, and every error names what was wrong.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

use premia::binance::market_wire::{parse_frame, WireError as MarketWireError};
use premia::binance::rest_wire::{
    Account, BalanceEntry, ErrorBody, ExchangeInfo, OrderResponse, PositionRiskV2, PositionRiskV3,
    PremiumIndex, ServerTime,
};
use premia::binance::user_wire::{decode_user_frame, parse_user_frame};
use premia::binance::wire::decode;
use premia::binance::WireError;
use premia::config::{Config, ConfigError, KEYS};
use premia::model::Venue;

/// Cases per property: enough to shake out panics in CI, few enough to run in seconds. `PREMIA_FUZZ_CASES=N` runs
/// longer by hand.
const CASES: u32 = 1024;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PREMIA_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every `.json` fixture under a folder of tests/fixtures/docs.
fn json_fixtures(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docs")
        .join(dir);
    let mut out: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", root.display());
    out
}

/// Real market frames: the recorded stream lines (without their receive timestamps) and the documented examples.
fn market_seeds() -> Vec<String> {
    let mut out: Vec<String> = read("tests/fixtures/market_data/real_stream_line_examples.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["raw_line"].as_str().map(str::to_string))
        .filter_map(|l| l.split_once(' ').map(|(_, frame)| frame.to_string()))
        .collect();
    out.extend(json_fixtures("futures/ws_market"));
    out.extend(json_fixtures("spot"));
    for f in [
        "spot_btcusdt_20240808_head2000.gz",
        "usdm_btcusdt_20240808_head2000.gz",
    ] {
        out.extend(recorded_frames(f, 400));
    }
    out
}

/// The first `n` frames of a bundled recording (`<recv ts> <frame>` lines, gzip).
fn recorded_frames(name: &str, n: usize) -> Vec<String> {
    use std::io::BufRead;
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/market_data")
        .join(name);
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap());
    std::io::BufReader::new(gz)
        .lines()
        .take(n)
        .map(|l| l.unwrap())
        .filter_map(|l| l.split_once(' ').map(|(_, frame)| frame.to_string()))
        .collect()
}

/// The seeds are real, valid frames: mutations start from inputs the parsers accept and walk off from there.
#[test]
fn market_and_user_seeds_parse() {
    let market = market_seeds();
    assert!(market.len() > 800);
    for f in &market {
        let venue = if f.contains("\"e\":\"trade\"") || f.contains("\"e\":\"serverShutdown\"") {
            Venue::Spot
        } else {
            Venue::Perp
        };
        assert!(parse_frame(f, venue).is_ok(), "{f}");
    }
    for f in json_fixtures("futures/ws_user_data") {
        assert!(parse_user_frame(&f).is_ok(), "{f}");
    }
}

/// A mutation of a seed's bytes.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    /// Copy a slice of the input over another place (duplicated keys, nested braces, repeated digits).
    Splice(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes biased toward JSON/TOML syntax, digits and quotes, where parsers branch.
    let byte = prop_oneof![
        3 => prop::sample::select(b"{}[]\":,.-+eE0123456789 \n=#'\\tfnu".to_vec()),
        1 => any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..12).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>(), 1usize..24).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
    ]
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut b = seed.as_bytes().to_vec();
    for e in edits {
        let len = b.len().max(1);
        match *e {
            Edit::Flip(i, x) if !b.is_empty() => b[i % len] = x,
            Edit::Insert(i, x) => b.insert(i % (b.len() + 1), x),
            Edit::Delete(i, n) if !b.is_empty() => {
                let at = i % len;
                b.drain(at..(at + n).min(b.len()));
            }
            Edit::Truncate(i) => b.truncate(i % (b.len() + 1)),
            Edit::Splice(from, to, n) if !b.is_empty() => {
                let from = from % len;
                let piece: Vec<u8> = b[from..(from + n).min(b.len())].to_vec();
                let to = to % (b.len() + 1);
                b.splice(to..to, piece);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// A seed picked by index and mutated by a few edits (sometimes none: the real input itself).
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    (0..seeds.len(), prop::collection::vec(edit(), 0..6))
        .prop_map(move |(i, e)| apply(&seeds[i], &e))
}

/// Random text or a mutated seed.
fn input(seeds: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => "\\PC{0,64}",
        4 => mutated(seeds),
    ]
}

fn wire_error_names_what(e: &WireError) {
    assert!(!e.message.is_empty(), "{e:?}");
    assert!(!e.field.is_empty(), "no field: {e:?}");
    assert!(!e.reason.trim().is_empty(), "no reason: {e:?}");
    assert!(e.to_string().contains(e.message), "{e}");
}

/// Decodes `json` as `T` and runs the conversion to domain types the REST client runs on it.
fn rest<T: serde::de::DeserializeOwned>(msg: &'static str, json: &str, to_domain: impl Fn(T)) {
    match decode::<T>(msg, json) {
        Ok(v) => to_domain(v),
        Err(e) => wire_error_names_what(&e),
    }
}

fn rest_seeds() -> Vec<String> {
    let mut s = json_fixtures("futures/rest");
    s.push(r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#.to_string());
    s
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn market_frames_never_panic_and_errors_name_the_field(s in input(market_seeds()), spot in any::<bool>()) {
        let venue = if spot { Venue::Spot } else { Venue::Perp };
        match parse_frame(&s, venue) {
            Err(MarketWireError::MissingField { msg, field }) | Err(MarketWireError::BadField { msg, field, .. }) => {
                prop_assert!(!msg.is_empty() && !field.is_empty());
            }
            Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
            Ok(_) => {}
        }
        let _ = premia::binance::market_wire::sniff_venue(&s);
    }

    #[test]
    fn user_frames_never_panic_and_errors_name_the_field(s in input(json_fixtures("futures/ws_user_data"))) {
        if let Err(e) = parse_user_frame(&s) {
            wire_error_names_what(&e);
        }
        if let Err(e) = decode_user_frame(&s) {
            wire_error_names_what(&e);
        }
    }

    #[test]
    fn rest_bodies_never_panic_and_errors_name_the_field(s in input(rest_seeds())) {
        rest::<ServerTime>("time", &s, |_| {});
        rest::<ErrorBody>("error", &s, |_| {});
        rest::<ExchangeInfo>("exchangeInfo", &s, |x| {
            if let Err(e) = x.symbol_filters("BTCUSDT") {
                wire_error_names_what(&e);
            }
        });
        rest::<OrderResponse>("order", &s, |o| {
            let _ = (o.to_update(), o.to_record());
        });
        rest::<Vec<PositionRiskV2>>("positionRisk v2", &s, |v| v.iter().for_each(|p| { p.to_position(); }));
        rest::<Vec<PositionRiskV3>>("positionRisk v3", &s, |v| v.iter().for_each(|p| { p.to_position(); }));
        rest::<Vec<BalanceEntry>>("balance", &s, |v| v.iter().for_each(|b| { b.to_balance(); }));
        rest::<Account>("account", &s, |a| { a.to_snapshot(); });
        rest::<PremiumIndex>("premiumIndex", &s, |p| { p.to_mark(); });
    }
}

/// The `when` expressions of the shipped strategies, and a few that use every operator and function shape.
fn expr_seeds() -> Vec<String> {
    let mut out = vec![
        "perp_mid > 0".to_string(),
        "change(premium_bps, 20s) >= 3.5 and zscore(premium_bps, 5m) < -2 or not (spread_bps > 1.5)".to_string(),
        "abs(mean(premium_bps, 30s) - premium_bps) * 2 / 3 > -1e3".to_string(),
        "pnl_pct <= -0.4 or held > 90s".to_string(),
    ];
    for f in [
        "strategies/premium_divergence.toml",
        "strategies/demo_window_b.toml",
    ] {
        let t: toml::Table = toml::from_str(&read(f)).unwrap();
        for r in t
            .get("rule")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(w) = r.get("when").and_then(|w| w.as_str()) {
                out.push(w.to_string());
            }
        }
    }
    out
}

fn strategy_seeds() -> Vec<String> {
    vec![
        read("strategies/premium_divergence.toml"),
        read("strategies/demo_window_b.toml"),
    ]
}

/// A step from a strategy's root to a table in it.
#[derive(Debug, Clone)]
enum Step {
    Key(&'static str),
    Rule(usize),
}

/// Every (table, key) a value can be put at: the keys present in the file, plus one unknown key per table.
fn value_slots(root: &toml::Table) -> Vec<(Vec<Step>, String)> {
    let mut slots = Vec::new();
    let mut add = |path: Vec<Step>, t: &toml::Table| {
        for k in t
            .keys()
            .filter(|k| !t[k.as_str()].is_table() && !t[k.as_str()].is_array())
        {
            slots.push((path.clone(), k.clone()));
        }
        slots.push((path, "unknwon_key".to_string()));
    };
    add(Vec::new(), root);
    for section in ["exit", "order"] {
        if let Some(t) = root.get(section).and_then(|t| t.as_table()) {
            add(vec![Step::Key(section)], t);
        }
    }
    for (i, r) in root["rule"].as_array().unwrap().iter().enumerate() {
        add(vec![Step::Rule(i)], r.as_table().unwrap());
    }
    slots
}

fn config_seeds() -> Vec<String> {
    [
        "config/default.toml",
        "config/testnet.toml",
        "config/demo.toml",
    ]
    .iter()
    .map(|f| read(f))
    .collect()
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn expressions_never_panic_and_errors_point_into_the_text(s in input(expr_seeds())) {
        if let Err(e) = premia::strategy::expr::parse(&s) {
            prop_assert!(!e.message.trim().is_empty(), "{e:?}");
            prop_assert!(e.span.start <= e.span.end && e.span.end <= s.len() + 1, "{e:?} in {s:?}");
        }
    }

    #[test]
    fn strategy_files_never_panic_and_errors_name_the_file(s in input(strategy_seeds())) {
        if let Err(e) = premia::strategy::parse_str(&s, "fuzz.toml") {
            let problems = e.problems();
            prop_assert!(!problems.is_empty(), "{e}");
            for p in problems {
                prop_assert_eq!(p.file.as_str(), "fuzz.toml");
                prop_assert!(!p.message.trim().is_empty(), "{p:?}");
            }
        }
    }

    /// Structure-aware: a valid strategy with one value replaced (an expression mutated, or any value of any type
    /// under any of its keys), so the checks past TOML syntax — names, types, ranges, compilation — are reached.
    #[test]
    fn strategy_values_never_panic_and_errors_name_the_file(
        seed in 0..2usize,
        at in any::<prop::sample::Index>(),
        expr in input(expr_seeds()),
        value in toml_value(),
        use_expr in any::<bool>(),
    ) {
        let mut root: toml::Table = toml::from_str(&strategy_seeds()[seed]).unwrap();
        let slots = value_slots(&root);
        let (table_path, key) = &slots[at.index(slots.len())];
        let new = if use_expr {
            toml::Value::String(expr)
        } else {
            toml::from_str::<toml::Table>(&format!("v = {value}")).unwrap()["v"].clone()
        };
        let mut t = &mut root;
        for step in table_path {
            t = match step {
                Step::Key(k) => t.get_mut(*k).and_then(|v| v.as_table_mut()).unwrap(),
                Step::Rule(i) => t.get_mut("rule").and_then(|r| r.as_array_mut()).unwrap()[*i]
                    .as_table_mut()
                    .unwrap(),
            };
        }
        t.insert(key.clone(), new);
        let text = toml::to_string(&root).unwrap();
        if let Err(e) = premia::strategy::parse_str(&text, "fuzz.toml") {
            prop_assert!(!e.problems().is_empty(), "{e}");
            for p in e.problems() {
                prop_assert_eq!(p.file.as_str(), "fuzz.toml");
                prop_assert!(!p.message.trim().is_empty(), "{p:?}");
            }
            prop_assert!(
                e.problems().iter().any(|p| p.key.contains(key.as_str()) || p.message.contains(key.as_str())),
                "no problem names `{key}`: {e}"
            );
        }
    }

    #[test]
    fn config_files_never_panic_and_errors_name_file_and_key(s in input(config_seeds())) {
        match Config::parse(&s, "fuzz.toml") {
            Ok(_) => {}
            Err(ConfigError::Invalid(problems)) => {
                prop_assert!(!problems.is_empty());
                for p in &problems {
                    prop_assert_eq!(p.file.as_str(), "fuzz.toml");
                    prop_assert!(!p.message.trim().is_empty(), "{p:?}");
                }
            }
            Err(e) => prop_assert!(false, "parse of text gave {e}"),
        }
    }

    /// Any value of any type under any known key: valid, or problems naming exactly that key (or a rule it takes
    /// part in with other keys).
    #[test]
    fn a_bad_value_is_named_by_its_key(i in 0..KEYS.len(), value in toml_value()) {
        let k = &KEYS[i];
        let path = k.path();
        let mut root: toml::Table = toml::from_str("strategy = \"s.toml\"\n[local]\ndata = [\"x\"]\n").unwrap();
        prop_assert!(Config::parse(&toml::to_string(&root).unwrap(), "fuzz.toml").is_ok());
        let v: toml::Table = toml::from_str(&format!("v = {value}")).unwrap();
        let section = if k.section.is_empty() {
            &mut root
        } else {
            root.entry(k.section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap()
        };
        section.insert(k.name.to_string(), v["v"].clone());
        let text = toml::to_string(&root).unwrap();
        const ACROSS_KEYS: &[&str] =
            &["exchange.rest_url", "exchange.ws_url", "feeds", "local.data", "risk.max_order_notional_usdt"];
        if let Err(ConfigError::Invalid(problems)) = Config::parse(&text, "fuzz.toml") {
            for p in &problems {
                prop_assert!(p.key == path || ACROSS_KEYS.contains(&p.key.as_str()), "{text}: {p}");
                prop_assert!(!p.message.trim().is_empty());
            }
        }
    }
}

/// A TOML value of any type, as it would be written in a file.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-1e6f64..1e6).prop_map(|x| format!("{x:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z0-9:/._ -]{0,16}".prop_map(|s| format!("{s:?}")),
        "-?[0-9]{1,6}(\\.[0-9]{1,4})?(ms|s|m|h|d|x)?".prop_map(|s| format!("{s:?}")),
        Just("[]".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ]
}

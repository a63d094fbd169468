//! ccxt, the client most crypto bots are built on, trading on the local exchange over loopback: the python script
//! `tests/ccxt/ccxt_check.py` drives ccxt's `binanceusdm` (pinned in `tests/ccxt/requirements.txt`, installed from
//! PyPI into a venv under the target directory, created here when `.ci/run` has not) against an in-process
//! exchange replaying the bundled 2024-08-08 recording. The same endpoints are also checked without ccxt, against
//! the shapes of Binance's own payloads (tests/fixtures/docs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use premia::binance::sign;
use premia::local_exchange::{LocalExchange, LocalExchangeConfig, RunningExchange};
use premia::model::Decimal;
use serde_json::Value;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
/// The checks `ccxt_check.py` runs without websockets.
const REST_CHECKS: usize = 21;

/// Serialises venv creation between the tests of this binary.
static VENV: Mutex<()> = Mutex::new(());

/// `<target>/ccxt-venv`, where `.ci/run` creates it too.
fn venv_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("ccxt-venv")
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The venv's python, after creating the venv (python3 -m venv; pip install the pinned ccxt) if it is missing or
/// was made for other requirements.
fn ensure_venv() -> Result<PathBuf, String> {
    let _guard = VENV.lock().unwrap_or_else(|p| p.into_inner());
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let req_path = Path::new(MANIFEST).join("tests/ccxt/requirements.txt");
    let req = std::fs::read_to_string(&req_path).map_err(|e| format!("{req_path:?}: {e}"))?;
    let stamp = dir.join("premia-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(req.as_str()) {
        return Ok(python);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{dir:?}: {e}"))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
        .map_err(|e| format!("cannot create the ccxt venv (python3 with venv needed): {e}"))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(&req_path))?;
    std::fs::write(&stamp, &req).map_err(|e| format!("{stamp:?}: {e}"))?;
    Ok(python)
}

async fn exchange(speed: f64, loop_replay: bool) -> RunningExchange {
    let cfg = LocalExchangeConfig {
        data: vec![format!("perp:{MANIFEST}/data/btcusdt_20240808_usdm.rec.gz")],
        speed,
        loop_replay,
        min_subscribers: 0,
        ..LocalExchangeConfig::default()
    };
    LocalExchange::start(cfg)
        .await
        .expect("local exchange starts")
}

/// Runs the script against `ex`; returns its stdout lines.
async fn ccxt_check(ex: &RunningExchange, ws: bool) -> (bool, Vec<String>) {
    let python = tokio::task::spawn_blocking(ensure_venv)
        .await
        .expect("venv task")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(MANIFEST).join("tests/ccxt/ccxt_check.py"))
        .args(["--rest", &ex.rest_url()])
        .args(["--key", &ex.keys().api_key])
        .args(["--secret", &ex.keys().secret]);
    if ws {
        cmd.args(["--ws", &ex.futures_ws_url()]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("script task")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.success(),
        stdout.lines().map(str::to_string).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccxt_binanceusdm_trades_on_the_local_exchange() {
    // The whole recording replayed at once: the exchange then serves its last book, trades and candles.
    let ex = exchange(0.0, false).await;
    tokio::time::timeout(Duration::from_secs(120), ex.replay_finished())
        .await
        .expect("replay finishes");
    let (ok, lines) = ccxt_check(&ex, false).await;
    let failed: Vec<_> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failed.is_empty(), "ccxt checks failed: {failed:#?}");
    let passed = lines.iter().filter(|l| l.starts_with("PASS")).count();
    assert_eq!(passed, REST_CHECKS, "{lines:#?}");
    assert!(ok, "script exit status");
    let snap = ex.snapshot();
    assert!(snap.position.qty.is_zero(), "ccxt closed the position");
    assert_eq!(snap.open_orders, 0);
    ex.shutdown().await;
}

/// ccxt.pro's watchers open `/public/ws/<n>` (book and raw trades) and subscribe with `SUBSCRIBE` requests; the
/// order book syncs from the REST snapshot plus diff depth events, which ccxt accepts only when their update ids
/// continue the snapshot's `lastUpdateId` (the script waits for a diff applied on the snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccxt_pro_watchers_on_the_local_exchange() {
    let ex = exchange(1.0, true).await;
    let (_, lines) = ccxt_check(&ex, true).await;
    for name in ["watch_order_book", "watch_trades"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("PASS {name}"))),
            "{name}: {lines:#?}"
        );
    }
    ex.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// The same endpoints without ccxt: Binance's shapes, checked against Binance's own payloads.

fn fixture(name: &str) -> Value {
    let path = format!("{MANIFEST}/tests/fixtures/docs/futures/rest/{name}");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn get(ex: &RunningExchange, path_and_query: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{}{path_and_query}", ex.rest_url()))
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// A signed request with the exchange's keys (or `secret` instead of its secret).
async fn signed(
    ex: &RunningExchange,
    method: reqwest::Method,
    path: &str,
    params: &[(&str, &str)],
    secret: Option<&str>,
) -> (u16, Value) {
    let mut q = String::new();
    for (k, v) in params {
        sign::push_param(&mut q, k, v);
    }
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    sign::push_param(&mut q, "timestamp", &ts.to_string());
    let sig = sign::sign(secret.unwrap_or(&ex.keys().secret), &q);
    sign::push_param(&mut q, "signature", &sig);
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}?{q}", ex.rest_url()))
        .header("X-MBX-APIKEY", &ex.keys().api_key)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

async fn finished_exchange() -> RunningExchange {
    let ex = exchange(0.0, false).await;
    tokio::time::timeout(Duration::from_secs(120), ex.replay_finished())
        .await
        .expect("replay finishes");
    ex
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_info_lists_every_field_binance_lists() {
    let ex = finished_exchange().await;
    let (status, info) = get(&ex, "/fapi/v1/exchangeInfo").await;
    assert_eq!(status, 200);
    let real = fixture("REAL_2021-07_fapi_v1_exchangeInfo_BTCUSDT_only.json");
    assert!(keys_of(&info).is_superset(&keys_of(&real)), "{info}");
    let (ours, theirs) = (&info["symbols"][0], &real["symbols"][0]);
    let missing: Vec<_> = keys_of(theirs)
        .difference(&keys_of(ours))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "symbol fields missing: {missing:?}");
    let types = |s: &Value| -> BTreeSet<String> {
        s["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["filterType"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(types(ours), types(theirs));
    assert_eq!(ours["orderTypes"], serde_json::json!(["LIMIT", "MARKET"]));
    assert_eq!(ours["timeInForce"], theirs["timeInForce"]);
    assert_eq!(ours["filters"][0]["tickSize"], "0.10");
    assert_eq!(info["assets"][0]["asset"], "USDT");
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_data_in_binance_shapes() {
    let ex = finished_exchange().await;
    let (_, t) = get(&ex, "/fapi/v1/ticker/24hr?symbol=BTCUSDT").await;
    assert!(t["lastPrice"].is_string() && t["volume"].is_string(), "{t}");
    assert!(t["count"].as_u64().unwrap_or(0) > 0, "{t}");
    let (_, all) = get(&ex, "/fapi/v1/ticker/price").await;
    assert_eq!(all[0]["symbol"], "BTCUSDT");
    let (_, bt) = get(&ex, "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT").await;
    let (bid, ask): (Decimal, Decimal) = (
        bt["bidPrice"].as_str().unwrap().parse().unwrap(),
        bt["askPrice"].as_str().unwrap().parse().unwrap(),
    );
    assert!(bid < ask, "{bt}");
    let (_, depth) = get(&ex, "/fapi/v1/depth?symbol=BTCUSDT&limit=5").await;
    assert_eq!(depth["bids"][0][0], bt["bidPrice"]);
    assert_eq!(depth["asks"][0][0], bt["askPrice"]);
    let (_, k) = get(&ex, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=3").await;
    let rows = k.as_array().expect("klines array");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].as_array().map(Vec::len), Some(12));
    assert!(rows[0][1].is_string() && rows[0][0].is_i64() && rows[0][8].is_u64());
    assert_eq!(
        rows[1][0].as_i64().unwrap() - rows[0][0].as_i64().unwrap(),
        60_000
    );
    let (_, aggs) = get(&ex, "/fapi/v1/aggTrades?symbol=BTCUSDT&limit=2").await;
    assert_eq!(aggs.as_array().map(Vec::len), Some(2));
    assert!(aggs[0]["p"].is_string() && aggs[0]["m"].is_boolean());
    let (_, pi) = get(&ex, "/fapi/v1/premiumIndex?symbol=BTCUSDT").await;
    let real = fixture("futures_GET_fapi_v1_premiumIndex_response.json");
    assert_eq!(keys_of(&pi), keys_of(&real));
    let (_, fr) = get(&ex, "/fapi/v1/fundingRate?symbol=BTCUSDT").await;
    assert!(fr.is_array());
    // Errors as Binance gives them.
    let (s, e) = get(&ex, "/fapi/v1/klines?symbol=BTCUSDT&interval=7m").await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(-1120)));
    let (s, e) = get(&ex, "/fapi/v1/depth?symbol=ETHUSDT").await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(-1121)));
    let (s, e) = get(&ex, "/fapi/v1/nothingHere").await;
    assert_eq!((s, e["code"].as_i64()), (404, Some(-1099)));
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_settings_and_key_errors() {
    use reqwest::Method;
    let ex = finished_exchange().await;
    let buy = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.002"),
    ];
    let (s, o) = signed(&ex, Method::POST, "/fapi/v1/order", &buy, None).await;
    assert_eq!(s, 200, "{o}");
    let sym = [("symbol", "BTCUSDT")];
    let (_, trades) = signed(&ex, Method::GET, "/fapi/v1/userTrades", &sym, None).await;
    assert_eq!(trades.as_array().map(Vec::len), Some(1), "{trades}");
    assert_eq!(trades[0]["orderId"], o["orderId"]);
    assert_eq!(
        (trades[0]["buyer"].as_bool(), trades[0]["maker"].as_bool()),
        (Some(true), Some(false))
    );
    let fee = trades[0]["commission"]
        .as_str()
        .unwrap()
        .parse::<Decimal>()
        .unwrap();
    assert!(fee > Decimal::ZERO);
    let (_, income) = signed(&ex, Method::GET, "/fapi/v1/income", &[], None).await;
    assert_eq!(income[0]["incomeType"], "COMMISSION");
    assert_eq!(
        income[0]["income"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        -fee
    );
    let (_, orders) = signed(&ex, Method::GET, "/fapi/v1/allOrders", &sym, None).await;
    assert_eq!(orders[0]["status"], "FILLED");
    let (_, b) = signed(&ex, Method::GET, "/fapi/v1/leverageBracket", &sym, None).await;
    assert_eq!(b["brackets"][0]["initialLeverage"].as_u64(), Some(20));
    let (_, c) = signed(&ex, Method::GET, "/fapi/v1/commissionRate", &sym, None).await;
    assert_eq!(c["takerCommissionRate"], "0.0005");
    for path in [
        "/fapi/v3/account",
        "/fapi/v3/balance",
        "/fapi/v3/positionRisk",
    ] {
        let (s, v) = signed(&ex, Method::GET, path, &[], None).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    let cross = [("symbol", "BTCUSDT"), ("marginType", "CROSSED")];
    let (s, e) = signed(&ex, Method::POST, "/fapi/v1/marginType", &cross, None).await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(-4046)));
    let one_way = [("dualSidePosition", "false")];
    let (s, e) = signed(
        &ex,
        Method::POST,
        "/fapi/v1/positionSide/dual",
        &one_way,
        None,
    )
    .await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(-4059)));
    let (s, e) = signed(&ex, Method::GET, "/fapi/v1/userTrades", &sym, Some("wrong")).await;
    assert_eq!((s, e["code"].as_i64()), (400, Some(-1022)));
    let r = reqwest::Client::new()
        .get(format!(
            "{}/fapi/v3/account?timestamp=1&signature=00",
            ex.rest_url()
        ))
        .header("X-MBX-APIKEY", "someone-else")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    ex.shutdown().await;
}

/// `premia exchange` (the real binary) prints a snippet that works as pasted, REST-only with `--min-subscribers 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_exchange_prints_a_working_ccxt_snippet() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let python = tokio::task::spawn_blocking(ensure_venv)
        .await
        .expect("venv task")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_premia"))
        .args([
            "exchange",
            "--listen",
            "127.0.0.1:0",
            "--min-subscribers",
            "0",
        ])
        .args([
            "--data",
            &format!("{MANIFEST}/data/btcusdt_20240808_usdm.rec.gz"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("premia exchange starts");
    let stdout = child.stdout.take().expect("stdout");
    // Read the snippet, then keep draining stdout (a closed pipe would stop the exchange at its next line).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let mut snippet = Vec::new();
        let mut inside = false;
        for line in lines.by_ref() {
            if line.starts_with("ccxt (Python)") {
                inside = true;
            } else if inside {
                let last = line.starts_with("print(");
                snippet.push(line);
                if last {
                    break;
                }
            }
        }
        let _ = tx.send(snippet.join("\n"));
        lines.for_each(drop);
    });
    let snippet = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("snippet printed")
        .expect("reader thread");
    assert!(snippet.contains("binanceusdm"), "{snippet}");
    let out = tokio::task::spawn_blocking(move || run(Command::new(python).args(["-c", &snippet])))
        .await
        .expect("snippet task");
    let _ = child.kill();
    let _ = child.wait();
    let out = out.unwrap_or_else(|e| panic!("the printed ccxt snippet fails: {e}"));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("'symbol': 'BTC/USDT:USDT'"), "{printed}");
}

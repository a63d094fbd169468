//! Integration tests: the real live tasks (feeds, user-data stream, order router, engine) against premia's local
//! Binance-speaking exchange on 127.0.0.1 — real HTTP and websockets, replaying real recorded frames.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use premia::binance::rest::{RestClient, RestConfig};
use premia::binance::Credentials;
use premia::config::Config;
use premia::live::{LiveError, LiveOptions, LiveSummary};
use premia::local_exchange::{Fault, ReplayPhase, RunningExchange};

use crate::support::{self, fixture};
use premia::model::{Decimal, JournalKind, OrderRecord, OrderRequest, OrderState, OrderType, Side};
use premia::store::Store;
use tokio_util::sync::CancellationToken;

/// A local exchange replaying the first 2,000 real frames of each market (2024-08-08, ~9 s with both markets).
async fn exchange(speed: f64) -> RunningExchange {
    support::start(support::head2000(speed, 2)).await
}

static ALWAYS_LONG: LazyLock<String> = LazyLock::new(|| support::always_long("always-long", "2s"));

/// Options that point every edge of `premia run` (mode binance) at the given exchange, with its keys (or a wrong
/// secret) passed directly, as `main` passes what it read from the environment.
fn config(
    ex: &RunningExchange,
    dir: &Path,
    strategy: &str,
    secret: Option<&str>,
    timeout_ms: u64,
) -> LiveOptions {
    let text = config_text(ex, dir, strategy, timeout_ms);
    let mut opts = LiveOptions::new(Config::parse(&text, "test.toml").expect("valid test config"));
    opts.credentials = Some(Credentials::new(
        ex.keys().api_key.clone(),
        secret.unwrap_or(&ex.keys().secret).to_string(),
    ));
    opts.clock = Some(ex.clock());
    opts
}

/// The config file of [`config`]; the keys are read from `PREMIA_IT_KEY` / `PREMIA_IT_SECRET` by `premia run`.
fn config_text(ex: &RunningExchange, dir: &Path, strategy: &str, timeout_ms: u64) -> String {
    support::BinanceConfig {
        key_env: "PREMIA_IT_KEY",
        secret_env: "PREMIA_IT_SECRET",
        timeout_ms,
        exchange: "leverage = 5\n",
        risk: "max_feed_staleness = \"3s\"\n",
        tail: "",
    }
    .text(ex, dir, strategy)
}

/// Runs the trader on `ex` until its recording has been replayed (or `max` passes).
async fn run_until_replayed(
    ex: &RunningExchange,
    mut opts: LiveOptions,
    max: Duration,
) -> Result<LiveSummary, LiveError> {
    let mut watch = ex.replay_watch();
    let stop = opts.shutdown.clone();
    let waiter = tokio::spawn(async move {
        let _ = watch.wait_for(|s| s.phase == ReplayPhase::Finished).await;
        stop.cancel();
    });
    opts.max_duration = Some(max);
    let r = premia::live::run(opts).await;
    waiter.abort();
    r
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn state_of(dir: &Path) -> Store {
    Store::open(&dir.join("state")).expect("state dir opens after the run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_feeds_entry_fill_exit_and_sled_matches_the_exchange() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&ex, tmp.path(), &ALWAYS_LONG, None, 5_000);
    let s = run_until_replayed(&ex, cfg, Duration::from_secs(60))
        .await
        .expect("run");
    assert!(
        s.events > 1_000,
        "market events reached the engine: {}",
        s.events
    );
    assert!(s.fills >= 2, "entered and exited at least once: {s:?}");
    assert!(s.stats.count() >= 1, "a closed trade: {s:?}");
    assert_eq!(s.rejects, 0);

    let snap = ex.snapshot();
    let exchange_qty = snap.position.qty;
    assert_eq!(Some(exchange_qty), s.exchange_position_qty);
    assert_eq!(
        s.position_qty, exchange_qty,
        "engine position == exchange position"
    );
    let store = state_of(tmp.path());
    let stored = store
        .positions()
        .unwrap()
        .into_iter()
        .find(|p| p.symbol == "BTCUSDT")
        .unwrap();
    assert_eq!(
        stored.qty, exchange_qty,
        "sled position == exchange position"
    );
    // Every order was filled, through the user-data stream and/or the REST result, and booked once.
    let orders = store.orders().unwrap();
    assert_eq!(orders.len() as u64, s.orders);
    let fills = store.fills().unwrap();
    for o in &orders {
        assert_eq!(o.state, OrderState::Filled, "{o:?}");
        let n = fills
            .iter()
            .filter(|f| f.client_id == o.request.client_id)
            .count();
        assert_eq!(n, 1, "one fill per market order: {}", o.request.client_id);
        assert_eq!(o.filled_qty, d("0.002"));
    }
    // Realised PnL agrees with the exchange's (both net of fees) once flat.
    if exchange_qty.is_zero() {
        assert_eq!(stored.realized_pnl, snap.realized_pnl);
    }
    // Decisions are journalled with the values that fired them.
    let journal = store.journal().unwrap();
    let decision = journal
        .iter()
        .find(|j| j.kind == JournalKind::Decision && j.rule == "in")
        .unwrap();
    assert!(
        decision
            .values
            .iter()
            .any(|(k, v)| k == "perp_mid" && *v > 60_000.0),
        "{decision:?}"
    );
    assert_eq!(decision.risk, "approved");
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_response_is_lost_is_resolved_by_client_id_without_a_duplicate() {
    let ex = exchange(4.0).await;
    ex.inject(Fault::DropNextOrderResponse);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&ex, tmp.path(), &ALWAYS_LONG, None, 400);
    let s = run_until_replayed(&ex, cfg, Duration::from_secs(60))
        .await
        .expect("run");
    let store = state_of(tmp.path());
    let orders = store.orders().unwrap();
    let first = &orders[0];
    assert_eq!(
        first.state,
        OrderState::Filled,
        "the lost order was found by its client id: {first:?}"
    );
    let fills = store.fills().unwrap();
    assert_eq!(
        fills
            .iter()
            .filter(|f| f.client_id == first.request.client_id)
            .count(),
        1
    );
    // No duplicate: the exchange's position is exactly what premia booked.
    assert_eq!(s.exchange_position_qty, Some(s.position_qty));
    assert_eq!(ex.snapshot().position.qty, s.position_qty);
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_reconnect_after_the_exchange_drops_the_websockets() {
    let ex = exchange(3.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&ex, tmp.path(), &ALWAYS_LONG, None, 5_000);
    let dropped = {
        let status = ex.replay_watch();
        let shared_ex = &ex;
        async move {
            // Wait (bounded) until part of the recording went out, then cut every market stream once.
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            for _ in 0..4_000 {
                tick.tick().await;
                if shared_ex.replay_status().frames_sent > 800 {
                    shared_ex.inject(Fault::DropMarketStreams);
                    return shared_ex.replay_status().frames_sent;
                }
            }
            drop(status);
            0
        }
    };
    let (s, at) = tokio::join!(
        run_until_replayed(&ex, cfg, Duration::from_secs(60)),
        dropped
    );
    let s = s.expect("run");
    assert!(at > 0, "the streams were dropped mid-replay");
    assert!(s.feed_reconnects >= 1, "{s:?}");
    let frames = ex.replay_status().frames_sent;
    assert!(frames > at + 500, "the replay went on after the drop");
    // Trading went on after the reconnect: decisions late in the recording.
    let journal = state_of(tmp.path()).journal().unwrap();
    let last = journal
        .iter()
        .filter(|j| j.kind == JournalKind::Decision)
        .map(|j| j.ts)
        .max()
        .unwrap();
    let first = journal
        .iter()
        .filter(|j| j.kind == JournalKind::Decision)
        .map(|j| j.ts)
        .min()
        .unwrap();
    assert!(
        last - first > 4_000_000_000,
        "decisions span the drop: {first}..{last}, {s:?}"
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resolves_unconfirmed_intents_and_adopts_the_exchange_position() {
    let ex = exchange(4.0).await;
    ex.start_replay();
    let mut watch = ex.replay_watch();
    let _ = watch.wait_for(|s| s.phase != ReplayPhase::Waiting).await;
    // Wait (bounded) until the perp book exists (its recording starts at 23:54:15.03 UTC) to trade against.
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..4_000 {
        if ex
            .replay_status()
            .virtual_ts
            .is_some_and(|t| t > 1_723_161_255_200_000_000)
        {
            break;
        }
        tick.tick().await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let intent = |id: &str| {
        OrderRecord::new(OrderRequest {
            client_id: id.to_string(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            order_type: OrderType::Market,
            qty: d("0.002"),
            price: None,
            reduce_only: false,
            rule: "in".into(),
            decided_ts: 1,
        })
    };
    {
        // A previous run wrote two intents and died: one never left, one reached the exchange.
        let store = Store::open(&tmp.path().join("state")).unwrap();
        store.put_order(&intent("pmold-1")).unwrap();
        store.put_order(&intent("pmold-2")).unwrap();
        store.flush().unwrap();
    }
    let rest = RestClient::new(
        RestConfig::new(ex.rest_url()),
        Credentials::new(ex.keys().api_key.clone(), ex.keys().secret.clone()),
    )
    .unwrap();
    rest.place_order(&intent("pmold-2").request)
        .await
        .expect("the order the old run sent");

    let never = r#"
name = "never"
symbol = "BTCUSDT"
[[rule]]
name = "never"
when = "perp_mid < 0"
action = "enter_long"
[order]
quantity = "0.002"
"#;
    let mut opts = config(&ex, tmp.path(), never, None, 5_000);
    opts.max_duration = Some(Duration::from_millis(500));
    let s = premia::live::run(opts).await.expect("run");
    assert_eq!(s.orders, 0);
    assert_eq!(
        s.position_qty,
        d("0.002"),
        "the exchange's position was adopted"
    );
    let store = state_of(tmp.path());
    let o1 = store.order("pmold-1").unwrap().unwrap();
    assert_eq!(o1.state, OrderState::Expired, "{o1:?}");
    let o2 = store.order("pmold-2").unwrap().unwrap();
    assert_eq!(o2.state, OrderState::Filled, "{o2:?}");
    assert_eq!(o2.filled_qty, d("0.002"));
    let pos = store
        .positions()
        .unwrap()
        .into_iter()
        .find(|p| p.symbol == "BTCUSDT")
        .unwrap();
    assert_eq!(pos.qty, d("0.002"), "sled agrees with the exchange");
    let reconciles = store
        .journal()
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == JournalKind::Reconcile)
        .count();
    // One entry per order resolved; the position needs no correction of its own, because the fill the old run
    // never booked is booked from the exchange's answer (by cumulative quantity), and it is in sled once.
    assert!(
        reconciles >= 2,
        "every correction is journalled ({reconciles})"
    );
    let fills: Vec<_> = store
        .fills()
        .unwrap()
        .into_iter()
        .filter(|f| f.client_id == "pmold-2")
        .collect();
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(fills[0].qty, d("0.002"));
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_keys_give_one_clear_error() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let wrong = "definitely-not-the-secret-0123456789";
    let mut opts = config(&ex, tmp.path(), &ALWAYS_LONG, Some(wrong), 5_000);
    opts.max_duration = Some(Duration::from_secs(5));
    let cfg = opts.config.clone();
    let err = premia::live::run(opts).await.expect_err("bad signature");
    assert_eq!(err.exit_code(), 2, "a bad key is not retried: {err}");
    let text = err.to_string();
    assert!(text.contains("-1022"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(&ex.keys().api_key),
        "no secrets in errors: {text}"
    );

    // No keys given: the error names the variables the config names.
    let mut opts = LiveOptions::new(cfg);
    opts.max_duration = Some(Duration::from_secs(5));
    match premia::live::run(opts).await {
        Err(e @ LiveError::MissingKeys(_)) => {
            let t = e.to_string();
            assert!(
                t.contains("PREMIA_IT_KEY") && t.contains("PREMIA_IT_SECRET"),
                "{t}"
            );
            assert_eq!(e.exit_code(), 2);
        }
        other => panic!(
            "expected MissingKeys, got {other:?}",
            other = other.map(|_| ())
        ),
    }
    ex.shutdown().await;
}

/// The live path on a recording and the backtest of the same recording decide the same entries: same rules, same
/// sides, timestamps within the replay's resolution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_backtest_make_the_same_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let strategy = r#"
name = "premium-swings"
symbol = "BTCUSDT"
[[rule]]
name = "premium up"
when = "change(premium_bps, 2s) >= 0.5"
action = "enter_long"
[[rule]]
name = "premium down"
when = "change(premium_bps, 2s) <= -0.5"
action = "enter_short"
[exit]
max_hold = "1500ms"
[order]
quantity = "0.002"
"#;
    // Backtest.
    let ex = exchange(2.0).await;
    let cfg = config(&ex, tmp.path(), strategy, None, 5_000);
    let bt = premia::backtest::run(premia::backtest::BacktestOptions {
        data: vec![
            fixture("spot_btcusdt_20240808_head2000.gz"),
            fixture("usdm_btcusdt_20240808_head2000.gz"),
        ],
        strategy: premia::strategy::load_file(&cfg.config.strategy).unwrap(),
        config: cfg.config.clone(),
        state_dir: tmp.path().join("bt"),
        fills_csv: None,
        progress: false,
    })
    .unwrap();
    let entries = |dir: PathBuf| -> Vec<(i64, String, String)> {
        Store::open(&dir)
            .unwrap()
            .journal()
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == JournalKind::Decision && j.action != "exit")
            .map(|j| (j.ts, j.rule, j.action))
            .collect()
    };
    let bt_entries = entries(tmp.path().join("bt"));
    assert!(
        bt.orders >= 2 && bt_entries.len() >= 2,
        "the strategy trades on this slice: {bt_entries:?}"
    );

    // Live on the same recording.
    run_until_replayed(&ex, cfg, Duration::from_secs(60))
        .await
        .expect("live run");
    ex.shutdown().await;
    let live_entries = entries(tmp.path().join("state"));
    // The first entry depends on market data only: same instant within the replay's resolution. Later ones also
    // depend on when the previous exit's fill came back (instant in the backtest, a real round trip live), so they
    // get a wider tolerance.
    let n = bt_entries.len().min(live_entries.len()).min(2);
    assert!(n >= 2, "live made entries too: {live_entries:?}");
    for i in 0..n {
        let tolerance = if i == 0 { 50_000_000 } else { 500_000_000 };
        let (bt_ts, bt_rule, bt_action) = &bt_entries[i];
        let (lv_ts, lv_rule, lv_action) = &live_entries[i];
        assert_eq!(
            (bt_rule, bt_action),
            (lv_rule, lv_action),
            "entry {i}: {bt_entries:?} vs {live_entries:?}"
        );
        assert!(
            (bt_ts - lv_ts).abs() <= tolerance,
            "entry {i} within {tolerance} ns: {bt_ts} vs {lv_ts}"
        );
    }
}

/// `premia record` writes what the feeds receive in the recording format; a backtest reads it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_frames_a_backtest_reads_back() {
    let ex = exchange(0.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let opts = premia::record::RecordOptions {
        spot_ws_url: ex.spot_ws_url(),
        futures_ws_url: ex.futures_ws_url(),
        symbol: "BTCUSDT".into(),
        spot_symbol: "BTCUSDT".into(),
        out_dir: tmp.path().join("rec"),
        gzip: true,
        duration: Some(Duration::from_secs(60)),
        max_frames: Some(1_515 + 1_483),
        shutdown: CancellationToken::new(),
        clock: None,
    };
    let s = premia::record::record(opts, "test").await.expect("record");
    ex.shutdown().await;
    // The fixtures hold 1,515 spot and 1,483 perp bookTicker frames (the only streams both feeds ask for here
    // besides markPrice/forceOrder, which these slices do not contain).
    assert_eq!(s.spot_frames, 1_515, "{s:?}");
    assert_eq!(s.perp_frames, 1_483, "{s:?}");
    let data = vec![
        s.spot_file.display().to_string(),
        s.perp_file.display().to_string(),
    ];
    let reader = premia::market::open(&data).expect("recordings open");
    let events: Vec<_> = reader
        .collect::<Result<_, _>>()
        .expect("every recorded line parses");
    assert_eq!(events.len(), 1_515 + 1_483);
    assert!(
        events.windows(2).all(|w| w[0].ts <= w[1].ts),
        "merged in time order"
    );
}

/// The listen key expires mid-run: the user-data stream gets a new key and reconnects, orders in flight are
/// re-queried, and the books still agree at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trading_survives_an_expired_listen_key() {
    let ex = exchange(3.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&ex, tmp.path(), &ALWAYS_LONG, None, 5_000);
    let expire = async {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        for _ in 0..4_000 {
            tick.tick().await;
            if ex.replay_status().frames_sent > 1_200 {
                ex.inject(Fault::ExpireListenKey);
                return true;
            }
        }
        false
    };
    let (s, expired) = tokio::join!(
        run_until_replayed(&ex, cfg, Duration::from_secs(60)),
        expire
    );
    let s = s.expect("run");
    assert!(expired, "the key was expired mid-replay");
    assert!(s.fills >= 2, "{s:?}");
    assert_eq!(s.exchange_position_qty, Some(s.position_qty));
    let store = state_of(tmp.path());
    for o in store.orders().unwrap() {
        assert!(o.state.is_terminal(), "no order left hanging: {o:?}");
    }
    ex.shutdown().await;
}

// =================================================================================================================
// Unattended operation: transient faults at start-up, persisted back-off, signals, exit codes, the state dir.

/// What the fault proxy answers instead of forwarding (in order, one per request), then it forwards everything.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// HTTP 429 with `Retry-After: n` seconds.
    RateLimited(u64),
    /// HTTP 418 with `Retry-After: n` seconds.
    Banned(u64),
    /// HTTP 503 `-1007`.
    Unavailable,
}

struct ProxyState {
    upstream: String,
    script: std::sync::Mutex<std::collections::VecDeque<Answer>>,
    /// Every request: when it arrived, its path, and the scripted answer it got (`None` = forwarded).
    seen: std::sync::Mutex<Vec<(std::time::SystemTime, String, Option<Answer>)>>,
    http: reqwest::Client,
}

/// A REST front for `ex` that answers the scripted faults first and forwards the rest to the real exchange.
async fn fault_proxy(
    listener: tokio::net::TcpListener,
    upstream: String,
    script: Vec<Answer>,
) -> std::sync::Arc<ProxyState> {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    let state = std::sync::Arc::new(ProxyState {
        upstream,
        script: std::sync::Mutex::new(script.into()),
        seen: std::sync::Mutex::default(),
        http: reqwest::Client::new(),
    });
    async fn handle(
        State(st): State<std::sync::Arc<ProxyState>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let answer = st.script.lock().unwrap().pop_front();
        let now = std::time::SystemTime::now();
        st.seen
            .lock()
            .unwrap()
            .push((now, uri.path().to_string(), answer));
        let fault = |status: u16, retry: Option<u64>, body: &'static str| {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(s) = retry {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        };
        match answer {
            Some(Answer::RateLimited(s)) => {
                return fault(429, Some(s), r#"{"code":-1003,"msg":"Too many requests"}"#)
            }
            Some(Answer::Banned(s)) => {
                return fault(418, Some(s), r#"{"code":-1003,"msg":"IP banned"}"#)
            }
            Some(Answer::Unavailable) => {
                return fault(
                    503,
                    None,
                    r#"{"code":-1007,"msg":"Timeout waiting for response from backend server. Send status unknown; execution status unknown."}"#,
                )
            }
            None => {}
        }
        let url = format!(
            "{}{}",
            st.upstream,
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let mut rb = st.http.request(m, url).body(body.to_vec());
        for (k, v) in headers.iter() {
            if k == "x-mbx-apikey" || k == "content-type" {
                rb = rb.header(k.as_str(), v.as_bytes());
            }
        }
        match rb.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let text = r.text().await.unwrap_or_default();
                (status, text).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    state
}

const NEVER: &str = r#"
name = "never"
symbol = "BTCUSDT"
[[rule]]
name = "never"
when = "perp_mid < 0"
action = "enter_long"
[order]
quantity = "0.002"
"#;

/// A loopback port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_retries_through_refused_connections_429_and_503_then_trades() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut opts = config(&ex, tmp.path(), &ALWAYS_LONG, None, 5_000);
    opts.config.exchange.rest_url = format!("http://127.0.0.1:{port}");
    // Nothing listens for the first second (connection refused), then the exchange answers 429, then 503.
    let upstream = ex.rest_url();
    let proxy = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        fault_proxy(
            l,
            upstream,
            vec![Answer::RateLimited(1), Answer::Unavailable],
        )
        .await
    });
    let s = run_until_replayed(&ex, opts, Duration::from_secs(60))
        .await
        .expect("the run survives the start-up faults");
    let proxy = proxy.await.unwrap();
    assert!(s.fills >= 2, "it traded after the faults: {s:?}");
    assert_eq!(s.exchange_position_qty, Some(s.position_qty));
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(
        matches!(seen[0].2, Some(Answer::RateLimited(1))),
        "{seen:?}"
    );
    assert!(matches!(seen[1].2, Some(Answer::Unavailable)), "{seen:?}");
    let waited = seen[1].0.duration_since(seen[0].0).unwrap();
    assert!(
        waited >= Duration::from_millis(990),
        "nothing sent inside the Retry-After window: {waited:?}"
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_learned_before_a_restart_is_waited_out_before_the_first_request() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = fault_proxy(listener, ex.rest_url(), vec![Answer::Banned(3)]).await;
    let mut opts = config(&ex, tmp.path(), NEVER, None, 5_000);
    opts.config.exchange.rest_url = format!("http://{addr}");
    // First process: banned at its first request, gives up after 1 s (--startup-timeout).
    let mut first = opts.clone();
    first.startup_timeout = Some(Duration::from_secs(1));
    let e = premia::live::run(first)
        .await
        .expect_err("start-up timed out");
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(
        e.to_string().contains("418"),
        "the last error is named: {e}"
    );
    let banned_at = proxy.seen.lock().unwrap()[0].0;
    assert_eq!(
        proxy.seen.lock().unwrap().len(),
        1,
        "nothing sent during the ban"
    );
    // Second process on the same state dir: waits for the rest of the ban, then starts.
    let mut second = opts;
    second.max_duration = Some(Duration::from_millis(300));
    second.shutdown = CancellationToken::new();
    premia::live::run(second).await.expect("the restart runs");
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(seen.len() > 1, "{seen:?}");
    let next = seen[1].0.duration_since(banned_at).unwrap();
    assert!(
        next >= Duration::from_millis(2_900),
        "the restarted process sent inside the ban window: {next:?}"
    );
    ex.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_that_cannot_be_written_refuses_to_trade_and_says_why() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where the state dir's parent should be: nothing can be created there (whoever runs the test).
    let blocker = tmp.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let mut opts = config(&ex, tmp.path(), &ALWAYS_LONG, None, 5_000);
    opts.config.state_dir = blocker.join("state");
    let e = premia::live::run(opts).await.expect_err("refused");
    assert!(matches!(e, LiveError::StateNotWritable { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 2);
    let text = e.to_string();
    assert!(
        text.contains("not-a-dir") && text.contains("does not trade"),
        "{text}"
    );
    assert_eq!(
        ex.snapshot().position.qty,
        Decimal::ZERO,
        "no order was sent"
    );
    ex.shutdown().await;
}

// -----------------------------------------------------------------------------------------------------------------
// The real binary: signals and exit codes.

/// Waits (bounded) for the child to exit; kills it and fails when it does not.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("premia did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pipe(p: Option<impl std::io::Read>) -> String {
    let mut s = String::new();
    if let Some(mut p) = p {
        let _ = p.read_to_string(&mut s);
    }
    s
}

#[test]
fn sigterm_takes_the_clean_path_flattens_prints_the_summary_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let strategy = tmp.path().join("strategy.toml");
    std::fs::write(&strategy, support::always_long("hold-long", "1h")).unwrap();
    let log = tmp.path().join("log.jsonl");
    let cfg = tmp.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
strategy = "{strategy}"
[exchange]
mode = "local"
[local]
data = ["spot:{spot}", "perp:{perp}"]
speed = 1.0
listen = "127.0.0.1:0"
[storage]
state_dir = "{state}"
[risk]
max_feed_staleness = "3s"
[log]
json_file = "{log}"
"#,
            strategy = strategy.display(),
            spot = fixture("spot_btcusdt_20240808_head2000.gz"),
            perp = fixture("usdm_btcusdt_20240808_head2000.gz"),
            state = tmp.path().join("state").display(),
            log = log.display(),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(["run", "--flatten-on-exit", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the entry has filled: the JSON log says so.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(r#""message":"fill""#) && l.contains(r#""position":"0.002""#))
    {
        assert!(
            std::time::Instant::now() < until,
            "no entry fill within 30 s"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("premia exited early: {}", read_pipe(child.stderr.take()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let out = read_pipe(child.stdout.take());
    let err = read_pipe(child.stderr.take());
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM: {err}");
    assert!(out.contains("run summary"), "summary printed: {out}");
    let position = out
        .lines()
        .find(|l| l.trim_start().starts_with("position"))
        .unwrap_or_else(|| panic!("a position line: {out}"));
    let numbers: Vec<Decimal> = position
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|t| Decimal::from_str(t).ok())
        .collect();
    assert_eq!(numbers.len(), 2, "premia's and the exchange's: {position}");
    assert!(numbers.iter().all(|q| q.is_zero()), "flattened: {position}");
    assert!(err.contains("SIGTERM"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_exit_2_and_the_error_reaches_the_json_log_without_the_secret() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.toml");
    std::fs::write(&cfg, config_text(&ex, tmp.path(), &ALWAYS_LONG, 5_000)).unwrap();
    let log = tmp.path().join("log.jsonl");
    let secret = "definitely-not-the-secret-0123456789";
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_premia"));
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .arg("--log-json")
        .arg(&log)
        .env("PREMIA_IT_KEY", &ex.keys().api_key)
        .env("PREMIA_IT_SECRET", secret);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("-1022"), "{err}");
    let json = std::fs::read_to_string(&log).unwrap();
    assert!(
        json.lines()
            .any(|l| l.contains("-1022") && l.contains(r#""fatal":true"#)),
        "the fatal error is in the JSON log: {json}"
    );
    for text in [&*err, &*json, &*String::from_utf8_lossy(&out.stdout)] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }
    ex.shutdown().await;
}

#[test]
fn an_unreachable_exchange_exits_3_after_the_startup_timeout_with_the_last_error() {
    let tmp = tempfile::tempdir().unwrap();
    let strategy = tmp.path().join("strategy.toml");
    std::fs::write(&strategy, NEVER).unwrap();
    let cfg = tmp.path().join("config.toml");
    let dead = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &cfg,
        format!(
            r#"
strategy = "{strategy}"
[exchange]
mode = "binance"
rest_url = "http://{dead}"
ws_url = "ws://{dead}"
api_key_env = "PREMIA_IT_KEY"
api_secret_env = "PREMIA_IT_SECRET"
[feeds]
spot_ws_url = "ws://{dead}"
futures_ws_url = "ws://{dead}"
[storage]
state_dir = "{state}"
"#,
            strategy = strategy.display(),
            state = tmp.path().join("state").display(),
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(["run", "--startup-timeout", "8s", "--config"])
        .arg(&cfg)
        .env("PREMIA_IT_KEY", "k")
        .env("PREMIA_IT_SECRET", "s")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--startup-timeout"), "{err}");
    assert!(
        err.contains("WAITING") && err.contains("server time"),
        "the status line says what start-up waits for: {err}"
    );
    assert_eq!(
        err.matches("exchange request failing").count(),
        1,
        "one line per state change, not per attempt: {err}"
    );
    assert!(
        err.contains("could not reach the exchange"),
        "the last error: {err}"
    );
    assert!(
        !err.contains("UNKNOWN"),
        "no order-outcome wording for a start-up request: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_that_cannot_connect_are_counted_as_failed_attempts_not_reconnects() {
    let ex = exchange(4.0).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = config(&ex, tmp.path(), &ALWAYS_LONG, None, 5_000);
    let dead = format!("ws://127.0.0.1:{}", free_port());
    opts.config.feeds.spot_ws_url = dead.clone();
    opts.config.feeds.futures_ws_url = dead;
    opts.max_duration = Some(Duration::from_secs(2));
    let s = premia::live::run(opts)
        .await
        .expect("the run goes on without feeds");
    assert!(s.feed_connect_failures >= 4, "{s:?}");
    assert_eq!(s.feed_reconnects, 0, "{s:?}");
    assert_eq!(s.feed_disconnects, 0, "{s:?}");
    assert_eq!(s.orders, 0, "no entry without market data");
    let text = s.render_text();
    assert!(
        text.contains("0 reconnects") && text.contains("failed connection attempts"),
        "{text}"
    );
    ex.shutdown().await;
}

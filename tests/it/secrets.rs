//! Secrets never leak: the real binary trades with known fake keys against the local exchange (startup, orders,
//! shutdown with a flatten, then a run with a wrong secret) and every log line, JSON log, state file, report and
//! error message is searched for the secret and the API key; `Debug` and `Display` of the types holding them too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use premia::binance::Credentials;
use premia::config::Config;
use premia::local_exchange::{ApiKeyPair, Fault, LocalExchangeConfig, RunningExchange};

use crate::support;

const FAKE_KEY: &str = "fakeKeyH4xQ7r2LmZp9Vt3Wn8Bc5Ds1Fg6Hj0Kl4Mn7Pq2Rs9Tu3Vw8Xy5Za1Bc6De0";
const FAKE_SECRET: &str = "fakeSecretH4kJ8sL2dF6gH1jK5lZ9xC3vB7nM0qW4eR8tY2uI6oP1aS5dF9gH3jK";
/// A wrong secret is a secret too: an error about it must not quote it.
const WRONG_SECRET: &str = "wrongSecretH4zX1cV5bN9mQ3wE7rT2yU6iO0pA4sD8fG2hJ6kL1zX5cV9bN3mQ7w";
const KEY_ENV: &str = "PREMIA_SECRETS_IT_KEY";
const SECRET_ENV: &str = "PREMIA_SECRETS_IT_SECRET";

async fn exchange() -> RunningExchange {
    support::start(LocalExchangeConfig {
        keys: ApiKeyPair {
            api_key: FAKE_KEY.to_string(),
            secret: FAKE_SECRET.to_string(),
        },
        ..support::head2000(2.0, 2)
    })
    .await
}

/// A binance-mode config pointed at `ex`, with a JSON log file of its own.
fn write_config(ex: &RunningExchange, dir: &Path) -> PathBuf {
    let json = dir.join("config-log.jsonl");
    let tail = format!(
        "[log]\nlevel = \"debug\"\njson_file = \"{}\"\n",
        json.display()
    );
    support::BinanceConfig {
        key_env: KEY_ENV,
        secret_env: SECRET_ENV,
        timeout_ms: 5000,
        exchange: "",
        risk: "max_feed_staleness = \"3s\"\n",
        tail: &tail,
    }
    .write(
        ex,
        dir,
        &support::always_long("always-long", "1s"),
        "premia.toml",
    )
}

/// Runs the real binary with the keys in its environment only (never in this process's); `None`: no secret set.
async fn premia(args: Vec<String>, secret: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_premia"));
        cmd.args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("RUST_LOG")
            .env_remove(SECRET_ENV)
            .env(KEY_ENV, FAKE_KEY);
        if let Some(secret) = secret {
            cmd.env(SECRET_ENV, secret);
        }
        cmd.output().expect("run premia")
    })
    .await
    .unwrap()
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Fails naming where a secret (or the key) showed up.
fn assert_clean(what: &str, bytes: &[u8]) {
    for needle in [FAKE_SECRET, WRONG_SECRET, FAKE_KEY] {
        let found = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes());
        assert!(
            found.is_none(),
            "{what} contains {needle}: …{}…",
            String::from_utf8_lossy(&bytes[found.unwrap().saturating_sub(80)..])
                .chars()
                .take(200)
                .collect::<String>()
        );
    }
}

/// Every file under `dir` (sled's database, config, snapshots, logs), byte for byte.
fn assert_tree_clean(dir: &Path) -> usize {
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files += assert_tree_clean(&p);
        } else {
            assert_clean(&p.display().to_string(), &std::fs::read(&p).unwrap());
            files += 1;
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_state_errors_or_debug() {
    let ex = exchange().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(&ex, tmp.path());
    let (cfg_s, cli_json) = (
        cfg.display().to_string(),
        tmp.path().join("cli-log.jsonl").display().to_string(),
    );
    let state = tmp.path().join("state");

    // Faults along the way, so their log lines are searched too: the first order is answered 503 (its outcome is
    // UNKNOWN until resolved by client id), and once the replay is under way the user stream's listen key expires
    // and the market streams drop (reconnects). Startup, entries, timed exits, then a clean stop that flattens.
    ex.inject(Fault::Http5xxNextOrder);
    let run = tokio::spawn(premia(
        s(&[
            "--log",
            "debug",
            "--log-json",
            &cli_json,
            "run",
            "--config",
            &cfg_s,
            "--max-seconds",
            "7",
            "--flatten-on-exit",
        ]),
        Some(FAKE_SECRET),
    ));
    let under_way = async {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while ex.replay_status().frames_sent < 1_000 {
            tick.tick().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), under_way)
        .await
        .is_err()
    {
        let out = run.await.unwrap();
        panic!(
            "the replay never got under way (the bot did not subscribe): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ex.inject(Fault::ExpireListenKey);
    ex.inject(Fault::DropMarketStreams);
    let run = run.await.unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "run failed: {stderr}");
    assert_clean("stdout of the run", &run.stdout);
    assert_clean("stderr of the run", &run.stderr);
    assert!(stderr.lines().count() > 5, "a debug run logs: {stderr}");

    let report = premia(
        s(&["report", "--state", &state.display().to_string(), "--json"]),
        Some(FAKE_SECRET),
    )
    .await;
    assert!(report.status.success());
    assert_clean("report", &report.stdout);
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let orders = r["orders"].as_array().map_or(0, Vec::len);
    assert!(orders >= 2, "the run traded (entry and exit): {r}");

    // An error path: the exchange rejects a wrong secret (-1022).
    // This one logs to the config's `log.json_file` (no --log-json).
    let bad = premia(
        s(&["run", "--config", &cfg_s, "--max-seconds", "5"]),
        Some(WRONG_SECRET),
    )
    .await;
    let bad_err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "a wrong secret must fail: {bad_err}");
    assert!(bad_err.contains("-1022"), "{bad_err}");
    assert_clean("stdout with a wrong secret", &bad.stdout);
    assert_clean("stderr with a wrong secret", &bad.stderr);

    // Another error path: the secret's variable is unset; the error names the variable, never the key.
    let unset = premia(
        s(&[
            "--log-json",
            &cli_json,
            "run",
            "--config",
            &cfg_s,
            "--max-seconds",
            "5",
        ]),
        None,
    )
    .await;
    let unset_err = String::from_utf8_lossy(&unset.stderr);
    assert!(
        !unset.status.success() && unset_err.contains(SECRET_ENV),
        "{unset_err}"
    );
    assert_clean("stderr with the secret unset", &unset.stderr);

    for f in ["cli-log.jsonl", "config-log.jsonl"] {
        let json = std::fs::read(tmp.path().join(f)).expect("JSON log file");
        assert!(json.len() > 100, "{f} written");
    }
    let files = assert_tree_clean(tmp.path());
    assert!(
        files >= 4,
        "state, logs and config searched ({files} files)"
    );
    ex.shutdown().await;
}

#[test]
fn debug_and_display_of_credentials_and_config_hide_the_keys() {
    let c = Credentials::new(FAKE_KEY, FAKE_SECRET);
    assert_clean("Debug of Credentials", format!("{c:?}").as_bytes());
    assert_clean("Display of Credentials", c.to_string().as_bytes());
    assert_clean(
        "alternate Debug of Credentials",
        format!("{c:#?}").as_bytes(),
    );
    assert_eq!(
        c.api_key(),
        FAKE_KEY,
        "the key is still there for the header"
    );

    let pair = ApiKeyPair {
        api_key: FAKE_KEY.to_string(),
        secret: FAKE_SECRET.to_string(),
    };
    assert_clean("Debug of ApiKeyPair", format!("{pair:?}").as_bytes());
    let ex_cfg = LocalExchangeConfig {
        keys: pair,
        ..LocalExchangeConfig::default()
    };
    assert_clean(
        "Debug of LocalExchangeConfig",
        format!("{ex_cfg:?}").as_bytes(),
    );

    // The config names the variables and never holds their values.
    let cfg = Config::parse(
        &format!(
            "strategy = \"s.toml\"\n[local]\ndata = [\"x\"]\n[exchange]\napi_key_env = \"{KEY_ENV}\"\napi_secret_env = \"{SECRET_ENV}\"\n"
        ),
        "t.toml",
    )
    .unwrap();
    let shown = format!("{cfg:?}");
    assert!(shown.contains(SECRET_ENV), "{shown}");
    assert_clean("Debug of Config", shown.as_bytes());
}

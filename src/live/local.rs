//! Where a live run's orders go and its market data comes from: the configured Binance endpoints, or the embedded
//! local exchange on a thread of its own.

use crate::binance::sign::Credentials;
use crate::clock::Clock;
use crate::config::{Config, ExchangeMode};
use crate::local_exchange::ReplayStatus;

use super::LiveError;

/// Where orders go and where market data comes from, resolved from the config (and the embedded exchange).
pub(super) struct Endpoints {
    pub(super) rest_url: String,
    pub(super) user_ws_url: String,
    pub(super) spot_ws_url: String,
    pub(super) futures_ws_url: String,
    pub(super) creds: Credentials,
    pub(super) clock: Clock,
    /// Set when the embedded local exchange runs (on its own thread).
    pub(super) local: Option<LocalThread>,
}

/// The endpoints of `cfg`; `creds` are the operator's keys (mode `binance`; the embedded exchange has its own).
pub(super) async fn endpoints(
    cfg: &Config,
    symbol: &str,
    creds: Option<&Credentials>,
) -> Result<Endpoints, LiveError> {
    match cfg.exchange.mode {
        ExchangeMode::Binance => {
            let creds = creds.cloned().ok_or_else(|| {
                LiveError::MissingKeys(vec![
                    cfg.exchange.api_key_env.clone(),
                    cfg.exchange.api_secret_env.clone(),
                ])
            })?;
            Ok(Endpoints {
                rest_url: cfg.exchange.rest_url.clone(),
                user_ws_url: cfg.exchange.ws_url.clone(),
                spot_ws_url: cfg.feeds.spot_ws_url.clone(),
                futures_ws_url: cfg.feeds.futures_ws_url.clone(),
                creds,
                clock: crate::clock::system_clock(),
                local: None,
            })
        }
        ExchangeMode::Local => {
            let (ex, info) = start_local_exchange(cfg, symbol).await?;
            Ok(Endpoints {
                rest_url: info.rest_url,
                user_ws_url: info.user_ws_url,
                spot_ws_url: if cfg.feeds.spot_ws_url.is_empty() {
                    info.spot_ws_url
                } else {
                    cfg.feeds.spot_ws_url.clone()
                },
                futures_ws_url: if cfg.feeds.futures_ws_url.is_empty() {
                    info.futures_ws_url
                } else {
                    cfg.feeds.futures_ws_url.clone()
                },
                creds: Credentials::new(info.keys.api_key.clone(), info.keys.secret.clone()),
                clock: info.clock,
                local: Some(ex),
            })
        }
    }
}

/// The embedded local exchange, running on its own thread and current-thread runtime: its replay pacing, websocket
/// fan-out and order handling then never queue in front of the bot's feeds, engine and router. Dropping this stops
/// the exchange too.
pub(super) struct LocalThread {
    pub(super) replay: tokio::sync::watch::Receiver<ReplayStatus>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// Closed when the thread has stopped the exchange and ended.
    done: tokio::sync::oneshot::Receiver<()>,
}

impl LocalThread {
    /// Stops the server, the replay and every websocket, and waits for the thread.
    pub(super) async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// What the local exchange's thread tells the bot once it is up (or why it is not).
type Ready = Result<(LocalInfo, tokio::sync::watch::Receiver<ReplayStatus>), LiveError>;

/// The local exchange's thread: starts it, reports it ready, serves until asked to stop, then shuts it down.
async fn serve(
    lcfg: crate::local_exchange::LocalExchangeConfig,
    ready_tx: tokio::sync::oneshot::Sender<Ready>,
    stop_rx: tokio::sync::oneshot::Receiver<()>,
) {
    let ex = match crate::local_exchange::LocalExchange::start(lcfg).await {
        Ok(ex) => ex,
        Err(e) => {
            let _ = ready_tx.send(Err(e.into()));
            return;
        }
    };
    let info = LocalInfo {
        rest_url: ex.rest_url(),
        user_ws_url: ex.user_ws_url(),
        spot_ws_url: ex.spot_ws_url(),
        futures_ws_url: ex.futures_ws_url(),
        keys: ex.keys().clone(),
        clock: ex.clock(),
    };
    if ready_tx.send(Ok((info, ex.replay_watch()))).is_ok() {
        // Until asked to stop, or until the bot's side is gone (an error ended the run).
        let _ = stop_rx.await;
    }
    ex.shutdown().await;
}

/// What the bot needs to know about the embedded exchange.
struct LocalInfo {
    rest_url: String,
    user_ws_url: String,
    spot_ws_url: String,
    futures_ws_url: String,
    keys: crate::local_exchange::ApiKeyPair,
    clock: Clock,
}

/// Starts the embedded local exchange from the config's `[local]`, `[fees]` and `[filters]`, on its own thread.
async fn start_local_exchange(
    cfg: &Config,
    symbol: &str,
) -> Result<(LocalThread, LocalInfo), LiveError> {
    use crate::local_exchange::LocalExchangeConfig;
    use tokio::sync::oneshot;
    let listen = cfg.local.listen.parse().map_err(|_| {
        LiveError::Startup(format!(
            "local.listen `{}` is not an address",
            cfg.local.listen
        ))
    })?;
    let lcfg = LocalExchangeConfig {
        listen,
        data: cfg.local.data.clone(),
        speed: cfg.local.speed,
        starting_balance: cfg.local.balance_usdt,
        taker_fee: cfg.fees.taker_rate,
        maker_fee: cfg.fees.maker_rate,
        symbol: symbol.to_string(),
        filters: cfg.filters.clone(),
        min_subscribers: 2,
        // The feeds' legacy mode needs the old paths served; routed and auto work against mainnet routing.
        legacy_routing: cfg.feeds.futures_routing == crate::binance::routing::Routing::Legacy,
        ..LocalExchangeConfig::default()
    };
    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("local-exchange".into())
        .spawn(move || {
            // Dropped last, when the exchange has stopped and its runtime is gone.
            let _done = done_tx;
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(LiveError::Startup(format!(
                        "cannot start the local exchange's runtime: {e}"
                    ))));
                    return;
                }
            };
            rt.block_on(serve(lcfg, ready_tx, stop_rx));
        })
        .map_err(|e| {
            LiveError::Startup(format!("cannot start the local exchange's thread: {e}"))
        })?;
    let (info, replay) = ready_rx.await.map_err(|_| {
        LiveError::Startup("the local exchange's thread ended before it started".into())
    })??;
    Ok((
        LocalThread {
            replay,
            stop: stop_tx,
            done: done_rx,
        },
        info,
    ))
}

//! `premia record`: raw websocket frames of both markets, stamped on arrival, written to recording files — the format
//! backtests and the local exchange read (`<receive ts ns> <combined-stream frame>` per line).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::binance::feed::{spawn_feed, FeedConfig, FeedEvent, RawFrame};
use crate::binance::routing::Routing;
use crate::clock::{system_clock, Clock};
use crate::market::RecordWriter;
use crate::model::Venue;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What to record.
#[derive(Clone)]
pub struct RecordOptions {
    pub spot_ws_url: String,
    pub futures_ws_url: String,
    /// The perp symbol; the spot leg uses `spot_symbol`.
    pub symbol: String,
    pub spot_symbol: String,
    pub out_dir: PathBuf,
    pub gzip: bool,
    /// Stop after this long; `None` = until `shutdown`.
    pub duration: Option<Duration>,
    /// Stop after this many frames (both markets together); `None` = no limit.
    pub max_frames: Option<u64>,
    pub shutdown: CancellationToken,
    /// Receive-time clock (`None` = the wall clock).
    pub clock: Option<Clock>,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSummary {
    pub spot_file: PathBuf,
    pub perp_file: PathBuf,
    pub spot_frames: u64,
    pub perp_frames: u64,
}

struct Sink {
    writer: RecordWriter,
    path: PathBuf,
}

impl Sink {
    fn create(path: PathBuf, gzip: bool) -> Result<Sink, RecordError> {
        let writer = RecordWriter::create(&path, gzip).map_err(|source| RecordError::Create {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Sink { writer, path })
    }

    fn write(&mut self, frame: &RawFrame) -> Result<(), RecordError> {
        self.writer
            .write_frame(frame.0, &frame.1)
            .map_err(|source| RecordError::Write {
                path: self.path.display().to_string(),
                source,
            })
    }
}

/// File names that say their market (so readers need no prefix): `spot_btcusdt_<stamp>.rec[.gz]`,
/// `usdm_btcusdt_<stamp>.rec[.gz]`.
pub fn file_names(dir: &Path, symbol: &str, stamp: &str, gzip: bool) -> (PathBuf, PathBuf) {
    let ext = if gzip { "rec.gz" } else { "rec" };
    let s = symbol.to_ascii_lowercase();
    (
        dir.join(format!("spot_{s}_{stamp}.{ext}")),
        dir.join(format!("usdm_{s}_{stamp}.{ext}")),
    )
}

/// Records until `duration` passes or `shutdown` is cancelled.
pub async fn record(opts: RecordOptions, stamp: &str) -> Result<RecordSummary, RecordError> {
    record_with_routing(opts, stamp, Routing::Routed).await
}

/// [`record`] with the USD-M streams connected the `routing` way (`[feeds] futures_routing`).
pub async fn record_with_routing(
    opts: RecordOptions,
    stamp: &str,
    routing: Routing,
) -> Result<RecordSummary, RecordError> {
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| RecordError::Create {
        path: opts.out_dir.display().to_string(),
        source,
    })?;
    let (spot_path, perp_path) = file_names(&opts.out_dir, &opts.symbol, stamp, opts.gzip);
    let mut spot = Sink::create(spot_path.clone(), opts.gzip)?;
    let mut perp = Sink::create(perp_path.clone(), opts.gzip)?;
    let clock = opts.clock.clone().unwrap_or_else(system_clock);
    let cancel = opts.shutdown.child_token();
    let (ev_tx, mut ev_rx) = mpsc::channel::<FeedEvent>(1024);
    let (spot_tx, mut spot_rx) = mpsc::channel::<RawFrame>(4096);
    let (perp_tx, mut perp_rx) = mpsc::channel::<RawFrame>(4096);
    let feeds = [
        spawn_feed(
            FeedConfig::spot(opts.spot_ws_url.clone(), &opts.spot_symbol),
            clock.clone(),
            ev_tx.clone(),
            Some(spot_tx),
            cancel.clone(),
        ),
        spawn_feed(
            FeedConfig::perp(opts.futures_ws_url.clone(), &opts.symbol).with_routing(routing),
            clock,
            ev_tx,
            Some(perp_tx),
            cancel.clone(),
        ),
    ];
    tracing::info!(spot = %spot_path.display(), perp = %perp_path.display(), "recording");
    let deadline = async {
        match opts.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let (mut spot_frames, mut perp_frames) = (0u64, 0u64);
    let result = loop {
        if opts
            .max_frames
            .is_some_and(|m| spot_frames + perp_frames >= m)
        {
            break Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            _ = &mut deadline => break Ok(()),
            Some(f) = spot_rx.recv() => {
                spot_frames += 1;
                if let Err(e) = spot.write(&f) { break Err(e) }
            }
            Some(f) = perp_rx.recv() => {
                perp_frames += 1;
                if let Err(e) = perp.write(&f) { break Err(e) }
            }
            Some(ev) = ev_rx.recv() => {
                if let FeedEvent::Status(s) = ev {
                    tracing::info!(status = ?s, "feed");
                }
            }
        }
    };
    cancel.cancel();
    for f in feeds {
        let _ = tokio::time::timeout(Duration::from_secs(3), f).await;
    }
    // Frames already received are kept.
    while let Ok(f) = spot_rx.try_recv() {
        spot_frames += 1;
        spot.write(&f)?;
    }
    while let Ok(f) = perp_rx.try_recv() {
        perp_frames += 1;
        perp.write(&f)?;
    }
    result?;
    for (sink, venue) in [(spot, Venue::Spot), (perp, Venue::Perp)] {
        let path = sink.path.display().to_string();
        sink.writer
            .finish()
            .map_err(|source| RecordError::Write { path, source })?;
        tracing::debug!(venue = venue.as_str(), "recording closed");
    }
    Ok(RecordSummary {
        spot_file: spot_path,
        perp_file: perp_path,
        spot_frames,
        perp_frames,
    })
}

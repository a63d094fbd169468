//! The replay scheduler: waits for subscribers, then sends the recorded frames at the chosen speed (paced on the
//! tokio clock, so paused-time tests run instantly), keeps the perp book (touch, mark) that orders fill against,
//! and advances the virtual clock to each frame's receive time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::account::Touch;
use super::error::LocalExchangeError;
use super::recording::{Frame, Recording};
use super::server::{ReplayPhase, Shared};
use crate::binance::market_wire::{self, Frame as WireFrame};
use crate::market::MarketKind;
use crate::model::{TsNs, Venue, NS_PER_MS};

/// With speed 0, let the subscribers run after this many frames.
const YIELD_EVERY: u64 = 16;

pub(crate) async fn run(shared: Arc<Shared>, recording: Recording) {
    if !wait_start(&shared).await {
        shared.set_phase(ReplayPhase::Finished, 0);
        return;
    }
    shared.set_phase(ReplayPhase::Running, 0);
    tracing::info!("replay started");
    let mut recording = recording;
    let mut loops = 0;
    let mut offset: TsNs = 0;
    loop {
        match play(&shared, &mut recording, offset).await {
            Ok(Some((first, last)))
                if shared.cfg.loop_replay && !shared.shutdown.is_cancelled() =>
            {
                loops += 1;
                // Virtual time keeps increasing across passes.
                offset += last - first + NS_PER_MS;
                match Recording::open(&shared.cfg.data) {
                    Ok(r) => recording = r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reopen the recording for another pass");
                        break;
                    }
                }
                shared.set_phase(ReplayPhase::Running, loops);
            }
            Ok(_) => {
                if !shared.shutdown.is_cancelled() {
                    loops += 1;
                }
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "replay stopped: recording unreadable");
                break;
            }
        }
    }
    tracing::info!(frames = shared.status_now().frames_sent, "replay finished");
    shared.set_phase(ReplayPhase::Finished, loops);
}

/// Waits for `min_subscribers` market streams (or `start_replay`); false on shutdown.
async fn wait_start(shared: &Shared) -> bool {
    let need = shared.cfg.min_subscribers;
    let mut subs = shared.subscribers.subscribe();
    tokio::select! {
        _ = shared.shutdown.cancelled() => false,
        _ = shared.start_now.notified() => true,
        r = subs.wait_for(|n| *n >= need) => r.is_ok(),
    }
}

/// One pass over the recording; returns the first and last receive times (`None` if empty or shut down).
async fn play(
    shared: &Shared,
    recording: &mut Recording,
    offset: TsNs,
) -> Result<Option<(TsNs, TsNs)>, LocalExchangeError> {
    let mut speed_rx = shared.speed.subscribe();
    let mut speed = *speed_rx.borrow_and_update();
    let mut anchor: Option<(Instant, TsNs)> = None;
    let mut span: Option<(TsNs, TsNs)> = None;
    let mut n: u64 = 0;
    while let Some(frame) = recording.next_frame()? {
        if shared.shutdown.is_cancelled() {
            return Ok(None);
        }
        if speed_rx.has_changed().unwrap_or(false) {
            speed = *speed_rx.borrow_and_update();
            anchor = None;
        }
        // Wait until the frame is due; a speed change while waiting re-anchors the clock at the last frame sent.
        while speed > 0.0 {
            let (i0, t0) = *anchor.get_or_insert((Instant::now(), span.map_or(frame.ts, |s| s.1)));
            let wait_ns = (frame.ts - t0).max(0) as f64 / speed;
            let due = i0 + Duration::from_nanos(wait_ns.min(u64::MAX as f64) as u64);
            if due <= Instant::now() {
                break;
            }
            tokio::select! {
                _ = shared.shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep_until(due) => break,
                r = speed_rx.changed() => match r {
                    Ok(()) => {
                        speed = *speed_rx.borrow_and_update();
                        anchor = None;
                    }
                    Err(_) => {
                        tokio::time::sleep_until(due).await;
                        break;
                    }
                },
            }
        }
        if speed <= 0.0 {
            n += 1;
            if n % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
        }
        span = Some((span.map_or(frame.ts, |s| s.0), frame.ts));
        let virtual_ts = frame.ts + offset;
        shared.set_virtual(virtual_ts);
        let frame = Arc::new(frame);
        apply(shared, &frame, virtual_ts);
        shared.count_frame();
        // No subscriber is not an error: the replay runs on.
        let _ = shared.market_tx.send(frame);
    }
    Ok(span)
}

/// Updates the perp book from a frame; resting orders the new touch reaches fill now.
fn apply(shared: &Shared, frame: &Frame, virtual_ts: TsNs) {
    if frame.venue != Venue::Perp {
        return;
    }
    let parsed = market_wire::parse_frame(frame.combined_str(), Venue::Perp);
    let update_id = super::streams::book_update_id(frame);
    if let Ok(WireFrame::Market(kind)) = &parsed {
        let mut md = shared.market();
        md.on_event(kind, virtual_ts);
        if let Some(u) = update_id {
            md.on_book_update_id(u);
        }
    } else if let Some(u) = update_id {
        shared.market().on_book_update_id(u);
    }
    match parsed {
        Ok(WireFrame::Market(MarketKind::Quote(q))) => {
            let mut core = shared.core();
            let mut execs = Vec::new();
            core.account.on_touch(
                Touch {
                    bid: q.bid,
                    ask: q.ask,
                },
                virtual_ts,
                &mut execs,
            );
            if !execs.is_empty() {
                shared.publish(&core, &execs);
            }
        }
        Ok(WireFrame::Market(MarketKind::Mark(m))) => shared.core().account.set_mark(m.mark),
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(error = %e, stream = frame.stream(), "frame not understood; replayed as is")
        }
    }
}

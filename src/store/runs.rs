//! The run record's life: a new run starts in a state dir (the previous run's record is kept, and marked crashed
//! when it has no end), and how a run ended.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, TreeId};
use super::{RunMeta, Store, StoreError};
use crate::model::TsNs;

/// Keys of earlier runs' records in the meta tree: this prefix and the run's start, zero-padded so they sort by it.
const PREVIOUS_PREFIX: &[u8] = b"prev:";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndedHow {
    /// It ran to its end (the data, its time limit, the end of a replay) and wrote its summary.
    Clean,
    /// SIGINT or SIGTERM stopped it, through the clean shutdown.
    Signal,
    /// It stopped on an error, after flushing its state.
    Error,
    /// Its process died without recording an end: found when the next run opened the state dir.
    Crashed,
}

impl EndedHow {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedHow::Clean => "clean",
            EndedHow::Signal => "signal",
            EndedHow::Error => "error",
            EndedHow::Crashed => "crashed",
        }
    }
}

fn previous_key(started_ts: TsNs) -> Vec<u8> {
    let mut k = PREVIOUS_PREFIX.to_vec();
    k.extend_from_slice(format!("{:020}", started_ts.max(0)).as_bytes());
    k
}

impl Store {
    /// Starts a new run: writes its record, keeping the previous run's (a state dir reused by binance mode, or a
    /// backtest's `--state` given again) among the earlier runs. A previous run without an end is marked
    /// [`EndedHow::Crashed`] at `now` — no other process can hold the state dir, so its process died. Returns that
    /// previous record.
    pub fn begin_run(&self, meta: &RunMeta, now: TsNs) -> Result<Option<RunMeta>, StoreError> {
        let previous = self.meta()?.map(|mut prev| {
            if prev.ended_ts.is_none() && prev.ended_how.is_none() {
                prev.ended_how = Some(EndedHow::Crashed);
                prev.crash_detected_ts = Some(now);
            }
            prev
        });
        if let Some(prev) = &previous {
            let key = previous_key(prev.started_ts);
            let value = encode(TreeId::Meta, &key, prev)?;
            self.meta
                .insert(key, value)
                .map_err(|e| self.db_err("write meta", e))?;
        }
        self.put_meta(meta)?;
        Ok(previous)
    }

    /// The records of earlier runs in this state dir, the oldest first.
    pub fn previous_runs(&self) -> Result<Vec<RunMeta>, StoreError> {
        let mut out = Vec::new();
        for item in self.meta.scan_prefix(PREVIOUS_PREFIX) {
            let (k, v) = item.map_err(|e| self.db_err("read meta", e))?;
            out.push(decode(TreeId::Meta, &k, &v)?);
        }
        Ok(out)
    }
}

/// Logs that the previous run in `dir` died without recording an end (found by [`Store::begin_run`]).
pub fn warn_if_crashed(previous: Option<&RunMeta>, dir: &std::path::Path) {
    if let Some(p) = previous.filter(|p| p.crash_detected_ts.is_some()) {
        tracing::warn!(
            state_dir = %dir.display(),
            previous_started_ts = p.started_ts,
            "the previous run in this state dir ended uncleanly (its process died); it is recorded as crashed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn run(started_ts: TsNs) -> RunMeta {
        RunMeta {
            started_ts,
            strategy_name: format!("s{started_ts}"),
            ..RunMeta::default()
        }
    }

    #[test]
    fn a_run_without_an_end_is_marked_crashed_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
        assert_eq!(store.begin_run(&run(100), 100).unwrap(), None);
        // The first run dies (no finish_run); the second one finds it.
        let prev = store.begin_run(&run(200), 250).unwrap().unwrap();
        assert_eq!(prev.ended_how, Some(EndedHow::Crashed));
        assert_eq!(prev.crash_detected_ts, Some(250));
        assert_eq!(store.meta().unwrap().unwrap().started_ts, 200);
        store.finish_run(300, None, EndedHow::Signal).unwrap();
        let prev = store.begin_run(&run(400), 400).unwrap().unwrap();
        assert_eq!(
            (prev.ended_ts, prev.ended_how, prev.crash_detected_ts),
            (Some(300), Some(EndedHow::Signal), None),
            "an ended run is kept as it ended"
        );
        let earlier = store.previous_runs().unwrap();
        let starts: Vec<_> = earlier.iter().map(|m| m.started_ts).collect();
        assert_eq!(starts, [100, 200]);
        assert_eq!(earlier[0].ended_how, Some(EndedHow::Crashed));
        assert!(store.meta_values().unwrap().is_empty(), "no free key/value");
    }

    #[test]
    fn ended_how_is_lowercase_in_the_record_and_an_old_record_reads() {
        let m = RunMeta {
            ended_how: Some(EndedHow::Signal),
            ..RunMeta::default()
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""ended_how":"signal""#), "{json}");
        let old: RunMeta = serde_json::from_str(r#"{"kind":"live","started_ts":5}"#).unwrap();
        assert_eq!((old.ended_how, old.crash_detected_ts), (None, None));
    }
}

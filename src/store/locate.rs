//! Finding a run to read: whether a folder is a state dir, the newest run in a folder of runs, and opening one
//! without ever creating a database where there was none (`premia report` is read-only).

use std::path::{Path, PathBuf};

use super::{Durability, Store, StoreError};
use crate::model::TsNs;

/// Files sled keeps in every state dir: a folder without them is not one, and is never opened.
const SLED_FILES: [&str; 2] = ["conf", "db"];

/// How deep under a folder of runs state dirs are looked for (`state/backtest-…`, `state/local/run-…`).
const SEARCH_DEPTH: u32 = 2;

/// Whether `dir` holds a premia state database.
pub fn is_state_dir(dir: &Path) -> bool {
    SLED_FILES.iter().all(|f| dir.join(f).is_file())
}

/// A state dir chosen for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub dir: PathBuf,
    /// The folder of runs it was chosen from (`None` when the state dir itself was given).
    pub chosen_from: Option<PathBuf>,
}

impl Store {
    /// Opens an existing state dir for reading; refuses (without writing anything) a folder that is not one.
    pub fn open_existing(dir: &Path) -> Result<Store, StoreError> {
        if !is_state_dir(dir) {
            return Err(StoreError::NotStateDir {
                dir: dir.to_path_buf(),
            });
        }
        Store::open_with(dir, Durability::Lazy)
    }
}

/// `path` itself when it is a state dir; else, for a folder of runs, the run started most recently by the wall
/// clock (the run record's start time). Runs without a run record (a run that failed before it started) do not
/// count; a run in use by another process counts by its database's modification time.
pub fn locate(path: &Path) -> Result<Located, StoreError> {
    if is_state_dir(path) {
        return Ok(Located {
            dir: path.to_path_buf(),
            chosen_from: None,
        });
    }
    let mut candidates = Vec::new();
    if path.is_dir() {
        collect(path, SEARCH_DEPTH, &mut candidates);
    }
    let mut best: Option<(TsNs, PathBuf)> = None;
    for dir in candidates {
        let Some(started) = started_ts(&dir) else {
            continue;
        };
        // Ties (same start) resolve by path, so the choice never depends on directory listing order.
        if best.as_ref().is_none_or(|(t, p)| (started, &dir) > (*t, p)) {
            best = Some((started, dir));
        }
    }
    match best {
        Some((_, dir)) => Ok(Located {
            dir,
            chosen_from: Some(path.to_path_buf()),
        }),
        None => Err(StoreError::NotStateDir {
            dir: path.to_path_buf(),
        }),
    }
}

fn collect(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if is_state_dir(&p) {
            out.push(p);
        } else if depth > 1 {
            collect(&p, depth - 1, out);
        }
    }
}

/// The wall-clock start of the run in `dir`, or `None` when it has no run record or cannot be read.
fn started_ts(dir: &Path) -> Option<TsNs> {
    match Store::open_existing(dir) {
        Ok(store) => store.meta().ok().flatten().map(|m| m.started_ts),
        Err(StoreError::InUse { .. }) => {
            let modified = std::fs::metadata(dir.join("db")).ok()?.modified().ok()?;
            let ns = modified
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some(TsNs::try_from(ns).unwrap_or(TsNs::MAX))
        }
        Err(_) => None,
    }
}

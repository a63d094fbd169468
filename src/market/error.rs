//! The error type of the market-data readers: every message names the file (and the line, for bad lines).

/// A problem with market-data input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file as a whole is not usable: unknown format, unknown market, missing `spot:`/`perp:` prefix, …
    #[error("{path}: {msg}")]
    Input { path: String, msg: String },
    /// One line is malformed; the reader continues with the next line.
    #[error("{path}:{line}: {msg}")]
    Line {
        path: String,
        line: u64,
        msg: String,
    },
}

impl DataError {
    pub(crate) fn input(path: &str, msg: impl Into<String>) -> Self {
        DataError::Input {
            path: path.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn io(path: &str, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_string(),
            source,
        }
    }

    /// The line number of a malformed line, if this is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            DataError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }
}

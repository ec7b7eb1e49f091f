//! The crate's error type: a small kind plus a message, in the manner of async-nats'
//! `Error<Kind>`. The Python bindings map each kind to one `streamguard.errors` exception.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Input bytes that could not be decoded as a whole (e.g. unreadable Arrow stream).
    Decode,
    /// An invalid rule set (the message names the rule and field).
    Rule,
    /// A bad argument from the caller (unknown format name, bad option).
    Config,
    /// Reading or writing a file.
    Io,
    /// Talking to NATS: connecting, streams, consumers, publishing.
    Nats,
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    #[cold]
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    #[cold]
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::with_source(ErrorKind::Io, "I/O error", e)
    }
}

impl From<crate::rules::RuleError> for Error {
    fn from(e: crate::rules::RuleError) -> Error {
        Error::new(ErrorKind::Rule, e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

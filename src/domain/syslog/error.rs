//! Typed errors of the pure syslog layer.

use thiserror::Error;

/// Why a line could not be turned into a [`Record`](super::Record).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Empty (or whitespace-only) line; callers skip these silently.
    #[error("empty line")]
    Empty,
    /// The RFC 5424 header did not match.
    #[error("malformed RFC 5424 header: {0}")]
    Header(#[from] HeaderError),
    /// The structured-data section was present but malformed.
    #[error("malformed structured data at byte {offset} of the SD section: {reason}")]
    StructuredData {
        /// Byte offset inside the SD/MSG remainder.
        offset: usize,
        /// What was wrong.
        reason: SdError,
    },
    /// A JSON-stream line was not a valid record.
    #[error("invalid JSON record: {0}")]
    Json(String),
}

impl ParseError {
    /// Short stable machine-readable reason code (for quarantine rows and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::Header(h) => h.code(),
            ParseError::StructuredData { .. } => "structured_data",
            ParseError::Json(_) => "json",
        }
    }
}

/// What is wrong with the header `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID REST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The line does not start with `<`.
    #[error("line does not start with '<PRI>'")]
    MissingPri,
    /// `<` is not followed by one or more digits and `>`.
    #[error("PRI is not '<digits>'")]
    BadPri,
    /// The version after PRI is not `1 `.
    #[error("version is not '1' followed by a space")]
    BadVersion,
    /// A header token is missing or not followed by a single space.
    #[error("missing or malformed {0} field")]
    MissingField(&'static str),
    /// Nothing follows MSGID.
    #[error("no structured data or message after MSGID")]
    EmptyRemainder,
}

impl HeaderError {
    /// Short stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            HeaderError::MissingPri => "not_syslog",
            HeaderError::BadPri => "bad_pri",
            HeaderError::BadVersion => "bad_version",
            HeaderError::MissingField(_) => "missing_field",
            HeaderError::EmptyRemainder => "empty_remainder",
        }
    }
}

/// What is wrong inside an SD element.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdError {
    /// `[` with no SD-ID.
    #[error("empty SD-ID")]
    EmptySdId,
    /// End of input before the closing `]`.
    #[error("SD element is not closed with ']'")]
    UnterminatedElement,
    /// A parameter name is empty.
    #[error("empty parameter name")]
    EmptyParamName,
    /// A parameter name is not followed by `=`.
    #[error("parameter {0:?} is not followed by '='")]
    MissingEquals(String),
    /// `=` is not followed by `"`.
    #[error("value of parameter {0:?} does not start with '\"'")]
    MissingQuote(String),
    /// End of input inside a quoted value.
    #[error("value of parameter {0:?} is not terminated")]
    UnterminatedValue(String),
    /// An unexpected character where a space or `]` was required.
    #[error("unexpected character {0:?} after a parameter")]
    Unexpected(char),
}

//! Syslog intake, pure logic: RFC 5424 + `relay@55555` structured-data
//! parsing, attacker-IP selection, bounty/fingerprint extraction,
//! credential capture, per-IP observation aggregation and credential-reuse
//! correlation. No I/O, no actix, no diesel.

pub mod bounty;
pub mod collector;
pub mod credential;
pub mod error;
pub mod fields;
pub mod framing;
pub mod headers;
pub mod ip;
pub mod mail;
pub mod observation;
pub mod parser;
pub mod relp;
pub mod reuse;
pub mod sd;
pub mod search;
pub mod ua;

pub use bounty::{extract, BountyDraft, ExtractConfig, Extraction};
pub use collector::{Admission, CollectorFilter};
pub use credential::{extract_credential, CredentialDraft, CredentialError};
pub use error::{HeaderError, ParseError, SdError};
pub use fields::Fields;
pub use headers::TrustedProxies;
pub use ip::{parse_host_port, select_attacker_ip, HostPort, UNKNOWN_IP};
pub use observation::{merge_profile, AttackerDelta, AttackerProfile, ObservationBatch};
pub use parser::{
    parse_json_record, parse_line, parse_line_bytes, parse_timestamp, storable_text, Record,
};
pub use reuse::{candidate_groups, correlate, Change, CredentialRow, Finding, ReuseGroup};

#[cfg(test)]
mod tests;

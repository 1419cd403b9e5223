//! RFC 5424 line → [`Record`] (spec §3), and the reference's `.json` stream
//! records → [`Record`].

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use super::error::{HeaderError, ParseError};
use super::fields::{Fields, OrderedObject, OrderedValue};
use super::ip::{select_attacker_ip, UNKNOWN_IP};
use super::sd::parse_sd;

/// One parsed event: the collector's JSON record plus what the pipeline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Outer TIMESTAMP token as received.
    pub timestamp_raw: String,
    /// Parsed event time in UTC, when the token is ISO-8601.
    pub timestamp: Option<NaiveDateTime>,
    /// HOSTNAME (decky name), possibly from the inner header of a wrapped line.
    pub decky: String,
    /// APP-NAME (service).
    pub service: String,
    /// PROCID (`-` for DECNET emitters).
    pub procid: String,
    /// MSGID (event type), `command` for normalized shell lines.
    pub event_type: String,
    /// Attacker address or `Unknown`.
    pub attacker_ip: String,
    /// `relay@55555` parameters; `None` when a JSON record's `fields` was not an object.
    pub fields: Option<Fields>,
    /// Free-text MSG.
    pub msg: String,
    /// The original line (without its line terminator).
    pub raw_line: String,
    /// Peer certificate CN when received over the TLS listener.
    pub source_worker: Option<String>,
}

static EMPTY_FIELDS: Fields = Fields::new();

impl Record {
    /// The SD map, empty when absent.
    pub fn fields(&self) -> &Fields {
        self.fields.as_ref().unwrap_or(&EMPTY_FIELDS)
    }

    /// `YYYY-MM-DD HH:MM:SS` when the timestamp parsed, else the raw token.
    pub fn timestamp_display(&self) -> Cow<'_, str> {
        match self.timestamp {
            Some(t) => Cow::Owned(t.format("%Y-%m-%d %H:%M:%S").to_string()),
            None => Cow::Borrowed(&self.timestamp_raw),
        }
    }

    /// Whether the attacker address resolved.
    pub fn has_attacker_ip(&self) -> bool {
        !self.attacker_ip.is_empty() && self.attacker_ip != UNKNOWN_IP
    }
}

/// Parse raw bytes (invalid UTF-8 and NUL are replaced, never rejected; see [`storable_text`]).
pub fn parse_line_bytes(bytes: &[u8]) -> Result<Record, ParseError> {
    parse_line(&storable_text(bytes))
}

/// The text of a received line as every text column can hold it: the bytes themselves
/// (borrowed) when they are UTF-8 without NUL, otherwise a copy with each invalid sequence and
/// each NUL replaced by U+FFFD (PostgreSQL `text` cannot hold NUL). `Cow::Owned` therefore
/// means "not exact": the caller keeps the raw bytes beside the text.
pub fn storable_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => Cow::Borrowed(s),
        Ok(s) => Cow::Owned(s.replace('\0', "\u{FFFD}")),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")),
    }
}

/// Parse one RFC 5424 line (spec §3 rules 1–6).
pub fn parse_line(line: &str) -> Result<Record, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let h = parse_header(line)?;
    let mut decky = h.hostname;
    let mut service = h.app_name;
    let mut procid = h.procid;
    let mut event_type = h.msgid;
    let mut rest = h.rest;

    // Rule 2: double-wrap unwrap (only when the outer MSGID is NIL).
    if event_type == "-" {
        if let Some(body) = rest.strip_prefix('-') {
            if let Some(inner) = parse_inner_header(body.trim_start()) {
                decky = inner.hostname;
                service = inner.app_name;
                procid = inner.procid;
                event_type = inner.msgid;
                rest = inner.rest;
            }
        }
    }

    // Rule 3: SD / MSG split.
    let (mut fields, msg) = if let Some(m) = rest.strip_prefix('-') {
        (Fields::new(), m.trim_start())
    } else if rest.starts_with('[') {
        let split = parse_sd(rest)
            .map_err(|(offset, reason)| ParseError::StructuredData { offset, reason })?;
        (split.fields, split.msg)
    } else {
        (Fields::new(), rest)
    };

    let attacker_ip = select_attacker_ip(&mut fields, msg);

    // Rule 6: shell normalization.
    if event_type == "-" && msg.starts_with("CMD ") {
        event_type = "command";
    }

    Ok(Record {
        timestamp_raw: h.timestamp.to_owned(),
        timestamp: parse_timestamp(h.timestamp),
        decky: decky.to_owned(),
        service: service.to_owned(),
        procid: procid.to_owned(),
        event_type: event_type.to_owned(),
        attacker_ip,
        fields: Some(fields),
        msg: msg.to_owned(),
        raw_line: line.to_owned(),
        source_worker: None,
    })
}

struct Header<'a> {
    timestamp: &'a str,
    hostname: &'a str,
    app_name: &'a str,
    procid: &'a str,
    msgid: &'a str,
    rest: &'a str,
}

/// `<digits>1 ` then five single-space separated non-space tokens, a space
/// and a non-empty remainder.
fn parse_header(line: &str) -> Result<Header<'_>, HeaderError> {
    let s = line.strip_prefix('<').ok_or(HeaderError::MissingPri)?;
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || s.as_bytes().get(digits) != Some(&b'>') {
        return Err(HeaderError::BadPri);
    }
    let mut s = s[digits + 1..]
        .strip_prefix("1 ")
        .ok_or(HeaderError::BadVersion)?;
    const NAMES: [&str; 5] = ["TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID"];
    let mut toks = [""; 5];
    for (slot, name) in toks.iter_mut().zip(NAMES) {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        if end == 0 {
            return Err(HeaderError::MissingField(name));
        }
        *slot = &s[..end];
        s = match s[end..].strip_prefix(' ') {
            Some(r) => r,
            None if end == s.len() && name == "MSGID" => return Err(HeaderError::EmptyRemainder),
            None => return Err(HeaderError::MissingField(name)),
        };
    }
    if s.is_empty() {
        return Err(HeaderError::EmptyRemainder);
    }
    Ok(Header {
        timestamp: toks[0],
        hostname: toks[1],
        app_name: toks[2],
        procid: toks[3],
        msgid: toks[4],
        rest: s,
    })
}

/// Inner header of a wrapped line: `YYYY-MM-DDT… HOST APP PROCID MSGID REST`
/// with whitespace runs as separators.
fn parse_inner_header(body: &str) -> Option<Header<'_>> {
    let b = body.as_bytes();
    let is_d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let date_ok = (0..4).all(is_d)
        && b.get(4) == Some(&b'-')
        && (5..7).all(is_d)
        && b.get(7) == Some(&b'-')
        && (8..10).all(is_d)
        && b.get(10) == Some(&b'T');
    if !date_ok {
        return None;
    }
    let mut s = body;
    let mut toks = [""; 5];
    for slot in toks.iter_mut() {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        *slot = &s[..end];
        let after = s[end..].trim_start();
        if after.len() == s.len() - end {
            return None; // no separator (end of input)
        }
        s = after;
    }
    if toks[0].len() <= 11 || s.is_empty() {
        return None;
    }
    Some(Header {
        timestamp: toks[0],
        hostname: toks[1],
        app_name: toks[2],
        procid: toks[3],
        msgid: toks[4],
        rest: s,
    })
}

/// ISO-8601 → naive UTC. Offsets are applied; naive input is taken as UTC.
pub fn parse_timestamp(raw: &str) -> Option<NaiveDateTime> {
    if raw.len() < 10 || !raw.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
        return Some(dt.with_timezone(&Utc).naive_utc());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(raw, fmt) {
            return Some(t);
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(raw, fmt) {
            return Some(dt.with_timezone(&Utc).naive_utc());
        }
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// `fields` of a JSON record: an object (order kept) or anything else.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFields {
    Object(OrderedObject),
    Other(#[allow(dead_code)] OrderedValue),
}

#[derive(Deserialize)]
struct JsonRecord {
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
    #[serde(default)]
    decky: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    attacker_ip: Option<String>,
    #[serde(default)]
    fields: Option<JsonFields>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    raw_line: Option<String>,
    #[serde(default)]
    source_worker: Option<String>,
}

/// Parse one line of the reference's `.json` stream (spec §3 rule 7). The
/// `_trace` carrier is ignored; a non-object `fields` yields `fields: None`.
pub fn parse_json_record(line: &str) -> Result<Record, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let j: JsonRecord = serde_json::from_str(line).map_err(|e| ParseError::Json(e.to_string()))?;
    let fields = match j.fields {
        Some(JsonFields::Object(obj)) => Some(Fields::from_ordered(obj)),
        Some(JsonFields::Other(_)) | None => None,
    };
    let timestamp_raw = match j.timestamp {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Ok(Record {
        timestamp: parse_timestamp(&timestamp_raw),
        timestamp_raw,
        decky: j.decky.unwrap_or_default(),
        service: j.service.unwrap_or_default(),
        procid: "-".to_owned(),
        event_type: j.event_type.unwrap_or_default(),
        attacker_ip: j
            .attacker_ip
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| UNKNOWN_IP.to_owned()),
        fields,
        msg: j.msg.unwrap_or_default(),
        raw_line: j.raw_line.unwrap_or_default(),
        source_worker: j.source_worker,
    })
}

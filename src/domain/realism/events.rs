//! Shapes of what the Planner records and publishes (realism.md §1.3, §5.5–§5.7): driver
//! payloads, the bus payload, synthetic-file hashing and the body clip.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::traffic::{clip_chars, STDERR_MAX};

/// `orchestrator_events.action` of a planted file.
pub const FILE_CREATE_ACTION: &str = "file:create";
/// `orchestrator_events.action` of an in-place edit.
pub const FILE_EDIT_ACTION: &str = "file:edit";
/// `orchestrator_events.protocol` of every Planner row.
pub const PROTOCOL_SSH: &str = "ssh";
/// Characters of `synthetic_files.last_body` kept (§1.3, §11.1: characters, not bytes).
pub const SYNTHETIC_FILE_BODY_LIMIT: usize = 65_536;
/// Mode of every planted file.
pub const FILE_MODE: u32 = 0o644;

/// Lowercase hex SHA-256 of the UTF-8 body.
pub fn content_hash(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The stored form of a body: its first [`SYNTHETIC_FILE_BODY_LIMIT`] characters.
pub fn clip_body(body: &str) -> &str {
    clip_chars(body, SYNTHETIC_FILE_BODY_LIMIT)
}

/// Whether a stored body hit the cap (the API's `truncated`).
pub fn is_truncated(stored_body: &str) -> bool {
    stored_body.chars().count() >= SYNTHETIC_FILE_BODY_LIMIT
}

/// Error text of a failed write: trimmed, ≤ 256 characters, `rc=<n>` when empty.
pub fn write_error_text(rc: i64, message: &str) -> String {
    let t = clip_chars(message.trim(), STDERR_MAX);
    if t.is_empty() {
        format!("rc={rc}")
    } else {
        t.to_owned()
    }
}

/// File-write driver payload `{"dst_decky","path","bytes","rc","stderr"}` (§5.5).
/// `error` is `None` on success.
pub fn file_payload(dst_decky: &str, path: &str, bytes: usize, error: Option<&str>) -> Value {
    json!({
        "dst_decky": dst_decky,
        "path": path,
        "bytes": bytes,
        "rc": if error.is_some() { 1 } else { 0 },
        "stderr": error,
    })
}

/// Successful edit payload: the write payload plus `new_body`, `new_body_bytes`,
/// `synthetic_file_uuid` (§5.6).
pub fn edit_success_payload(
    dst_decky: &str,
    path: &str,
    new_body: &str,
    synthetic_file_uuid: &str,
) -> Value {
    let mut p = file_payload(dst_decky, path, new_body.len(), None);
    if let Some(obj) = p.as_object_mut() {
        obj.insert("new_body".into(), json!(new_body));
        obj.insert("new_body_bytes".into(), json!(new_body.len()));
        obj.insert("synthetic_file_uuid".into(), json!(synthetic_file_uuid));
    }
    p
}

/// Edit that could not be attempted: `{"dst_decky","path","error"}` (§5.6).
pub fn edit_failure_payload(dst_decky: &str, path: &str, error: &str) -> Value {
    json!({"dst_decky": dst_decky, "path": path, "error": error})
}

/// The bus/SSE payload of an `orchestrator.<kind>.<dst>` message (§5.7).
#[allow(clippy::too_many_arguments)]
pub fn bus_payload(
    kind: &str,
    action: &str,
    src_decky_uuid: Option<&str>,
    dst_decky_uuid: &str,
    success: bool,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Value {
    json!({
        "kind": kind,
        "protocol": PROTOCOL_SSH,
        "action": action,
        "src_decky_uuid": src_decky_uuid,
        "dst_decky_uuid": dst_decky_uuid,
        "success": success,
        "payload": payload,
        "ts": ts.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

/// Whether `id` can be a topic segment: non-empty, no `.`, `*`, `>` or whitespace (§9).
pub fn is_topic_safe(id: &str) -> bool {
    !id.is_empty()
        && !id
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            content_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(content_hash("abc").len(), 64);
    }

    #[test]
    fn clip_counts_characters_and_keeps_utf8_whole() {
        let exact = "a".repeat(SYNTHETIC_FILE_BODY_LIMIT);
        assert_eq!(clip_body(&exact), exact);
        assert!(is_truncated(&exact));
        let double = "é".repeat(2 * SYNTHETIC_FILE_BODY_LIMIT);
        let clipped = clip_body(&double);
        assert_eq!(clipped.chars().count(), SYNTHETIC_FILE_BODY_LIMIT);
        assert!(is_truncated(clipped));
        assert!(!is_truncated("short"));
    }

    #[test]
    fn payload_shapes() {
        let ok = file_payload("alpha", "/home/x/TODO.md", 12, None);
        assert_eq!(
            ok,
            json!({"dst_decky": "alpha", "path": "/home/x/TODO.md", "bytes": 12, "rc": 0, "stderr": null})
        );
        let bad = file_payload("alpha", "/p", 3, Some("rc=2"));
        assert_eq!(
            (bad["rc"].as_i64(), bad["stderr"].as_str()),
            (Some(1), Some("rc=2"))
        );
        let e = edit_success_payload("alpha", "/p", "hé\n", "u-1");
        assert_eq!(e["new_body_bytes"], 4);
        assert_eq!(e["synthetic_file_uuid"], "u-1");
        assert_eq!(e["rc"], 0);
        assert_eq!(
            edit_failure_payload("a", "/p", "boom"),
            json!({"dst_decky": "a", "path": "/p", "error": "boom"})
        );
        assert_eq!(write_error_text(3, "  "), "rc=3");
        assert_eq!(write_error_text(3, " disk full \n"), "disk full");
    }

    #[test]
    fn bus_payload_shape() {
        let ts = Utc.with_ymd_and_hms(2026, 4, 28, 9, 12, 0).unwrap();
        let p = bus_payload(
            "file",
            FILE_CREATE_ACTION,
            None,
            "local:omega",
            true,
            &json!({"a": 1}),
            ts,
        );
        assert_eq!(p["kind"], "file");
        assert_eq!(p["protocol"], "ssh");
        assert_eq!(p["src_decky_uuid"], Value::Null);
        assert_eq!(p["payload"]["a"], 1);
        assert_eq!(p["ts"], "2026-04-28T09:12:00.000000Z");
    }

    #[test]
    fn topic_safety() {
        assert!(is_topic_safe("local:omega-decky"));
        assert!(is_topic_safe("5d1c0000-0000-4000-8000-000000000001"));
        for bad in ["", "local:omega.decky", "a*", "a>", "a b", "a\tb"] {
            assert!(!is_topic_safe(bad), "{bad:?}");
        }
    }
}

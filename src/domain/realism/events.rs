//! Driver payloads the Planner records with its file actions (realism.md §5.5–§5.6). Body
//! clipping and hashing live with the `synthetic_files` repository; the bus payload is the
//! registry's typed `OrchestratorActivity`.

use serde_json::{json, Value};

use super::traffic::{clip_chars, STDERR_MAX};

/// `orchestrator_events.action` of a planted file.
pub const FILE_CREATE_ACTION: &str = "file:create";
/// `orchestrator_events.action` of an in-place edit.
pub const FILE_EDIT_ACTION: &str = "file:edit";
/// `orchestrator_events.protocol` of every Planner row.
pub const PROTOCOL_SSH: &str = "ssh";
/// Mode of every planted file.
pub const FILE_MODE: u32 = 0o644;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

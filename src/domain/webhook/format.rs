//! Per-subscription delivery formats: the signed generic JSON of §5.4, the same body signed
//! the Standard Webhooks way, and Slack / Microsoft Teams / Discord incoming-webhook messages
//! carrying a one-line summary of the event (with a dashboard link when a public dashboard URL
//! is configured). Every format carries the `X-DECNET-*` headers, signed over the bytes sent.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::sign::{canonical_body, signature_header, standard_signature, EventBody};

/// How a subscription's deliveries are shaped and signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{v,id,ts,topic,type,payload}`, sorted compact JSON, `X-DECNET-Signature` (§5.4).
    #[default]
    Generic,
    /// The generic body plus `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// Slack incoming webhook `{text}`.
    Slack,
    /// Microsoft Teams (Workflows) message with an Adaptive Card.
    Teams,
    /// Discord webhook `{content}`.
    Discord,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Generic => "generic",
            Format::Standard => "standard",
            Format::Slack => "slack",
            Format::Teams => "teams",
            Format::Discord => "discord",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        [
            Format::Generic,
            Format::Standard,
            Format::Slack,
            Format::Teams,
            Format::Discord,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// A request ready to send: exact body bytes and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

/// `User-Agent` of every delivery.
pub const USER_AGENT: &str = "decnet-webhook/1.0";
/// Discord refuses `content` longer than this.
const DISCORD_MAX: usize = 2000;

/// Payload keys worth a place in a one-line summary, in display order.
const SUMMARY_KEYS: [&str; 14] = [
    "attacker_ip",
    "src_ip",
    "ip",
    "decky",
    "decky_name",
    "service",
    "username",
    "secret_kind",
    "target_count",
    "identity_uuid",
    "campaign_uuid",
    "state",
    "worker",
    "message",
];

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) if !items.is_empty() => {
            let parts: Vec<String> = items.iter().take(3).filter_map(scalar).collect();
            let more = if items.len() > 3 { ", …" } else { "" };
            (!parts.is_empty()).then(|| format!("{}{more}", parts.join(", ")))
        }
        _ => None,
    }
}

/// `DECNET · attacker.observed · attacker_ip=1.2.3.4 · decky=web1 · service=ssh`
pub fn summary(body: &EventBody) -> String {
    let mut parts = vec!["DECNET".to_owned(), body.topic.clone()];
    let mut facts = 0;
    for key in SUMMARY_KEYS {
        if facts == 4 {
            break;
        }
        if let Some(v) = body.payload.get(key).and_then(scalar) {
            parts.push(format!("{key}={v}"));
            facts += 1;
        }
    }
    if facts == 0 {
        if let Some(v) = body.payload.get("attacker_ips").and_then(scalar) {
            parts.push(format!("attacker_ips={v}"));
        }
    }
    parts.join(" · ")
}

/// Dashboard page of the event's subject, when `dashboard` is set: attacker, identity and
/// campaign events link to their detail page, anything else to the dashboard root.
pub fn link(body: &EventBody, dashboard: Option<&str>) -> Option<String> {
    let base = dashboard?.trim_end_matches('/');
    if base.is_empty() {
        return None;
    }
    let family = body.topic.split('.').next().unwrap_or_default();
    let p = &body.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let path = match family {
        "attacker" => s("attacker_uuid").map(|u| format!("/attackers/{u}")),
        "identity" => s("identity_uuid").map(|u| format!("/identities/{u}")),
        "campaign" => s("campaign_uuid").map(|u| format!("/campaigns/{u}")),
        _ => None,
    };
    Some(format!("{base}{}", path.unwrap_or_default()))
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn chat_body(format: Format, body: &EventBody, dashboard: Option<&str>) -> Value {
    let line = summary(body);
    let url = link(body, dashboard);
    match format {
        Format::Slack => {
            let text = match &url {
                Some(u) => format!("{line} · <{u}|open in DECNET>"),
                None => line,
            };
            json!({ "text": text })
        }
        Format::Discord => {
            let text = match &url {
                Some(u) => format!("{line} · {u}"),
                None => line,
            };
            json!({ "content": truncate_chars(&text, DISCORD_MAX), "allowed_mentions": {"parse": []} })
        }
        Format::Teams => {
            let mut card = json!({
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": line, "wrap": true}],
            });
            if let (Some(u), Some(obj)) = (&url, card.as_object_mut()) {
                obj.insert(
                    "actions".to_owned(),
                    json!([{"type": "Action.OpenUrl", "title": "Open in DECNET", "url": u}]),
                );
            }
            json!({
                "type": "message",
                "summary": line,
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": card,
                }],
            })
        }
        Format::Generic | Format::Standard => Value::Null,
    }
}

/// Body and headers of one attempt. `signed_at` (epoch seconds, fixed per delivery) is the
/// `X-DECNET-Timestamp`; `attempt_at` is the Standard Webhooks timestamp, which receivers
/// check against their clock, so that scheme is re-signed per attempt.
pub fn render(
    format: Format,
    secret: &str,
    body: &EventBody,
    signed_at: i64,
    attempt_at: i64,
    dashboard: Option<&str>,
) -> Rendered {
    let text = match format {
        Format::Generic | Format::Standard => canonical_body(body),
        Format::Slack | Format::Teams | Format::Discord => {
            chat_body(format, body, dashboard).to_string()
        }
    };
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("User-Agent", USER_AGENT.to_owned()),
        (
            "X-DECNET-Signature",
            signature_header(secret, text.as_bytes()),
        ),
        ("X-DECNET-Event-Id", body.id.clone()),
        ("X-DECNET-Event-Topic", body.topic.clone()),
        ("X-DECNET-Timestamp", signed_at.to_string()),
    ];
    if format == Format::Standard {
        let msg_id = format!("msg_{}", body.id);
        headers.push((
            "webhook-signature",
            standard_signature(secret, &msg_id, attempt_at, text.as_bytes()),
        ));
        headers.push(("webhook-id", msg_id));
        headers.push(("webhook-timestamp", attempt_at.to_string()));
    }
    Rendered {
        body: text,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed() -> EventBody {
        EventBody::new(
            "0123456789abcdef0123456789abcdef",
            "attacker.observed",
            "observed",
            1_776_988_800.5,
            json!({"attacker_ip": "203.0.113.9", "decky": "web1", "service": "ssh",
                   "event_type": "login", "attacker_uuid": "u-1"}),
        )
    }

    fn header<'a>(r: &'a Rendered, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn generic_headers_and_signature_cover_the_exact_body() {
        let r = render(
            Format::Generic,
            "s3cret-s3cret-s3",
            &observed(),
            100,
            200,
            None,
        );
        assert_eq!(r.body, canonical_body(&observed()));
        assert_eq!(
            header(&r, "X-DECNET-Signature"),
            Some(signature_header("s3cret-s3cret-s3", r.body.as_bytes()).as_str())
        );
        assert_eq!(header(&r, "X-DECNET-Timestamp"), Some("100"));
        assert_eq!(
            header(&r, "X-DECNET-Event-Topic"),
            Some("attacker.observed")
        );
        assert_eq!(header(&r, "User-Agent"), Some(USER_AGENT));
        assert_eq!(header(&r, "webhook-id"), None);
    }

    #[test]
    fn standard_scheme_signs_id_attempt_time_and_body() {
        let r = render(Format::Standard, "whsec_AAAA", &observed(), 100, 200, None);
        assert_eq!(
            header(&r, "webhook-id"),
            Some("msg_0123456789abcdef0123456789abcdef")
        );
        assert_eq!(header(&r, "webhook-timestamp"), Some("200"));
        let sig = standard_signature(
            "whsec_AAAA",
            "msg_0123456789abcdef0123456789abcdef",
            200,
            r.body.as_bytes(),
        );
        assert_eq!(header(&r, "webhook-signature"), Some(sig.as_str()));
    }

    #[test]
    fn chat_formats_carry_a_summary_and_link() {
        let b = observed();
        let line = summary(&b);
        assert_eq!(
            line,
            "DECNET · attacker.observed · attacker_ip=203.0.113.9 · decky=web1 · service=ssh"
        );
        let dash = Some("https://decnet.example/");
        let slack: Value =
            serde_json::from_str(&render(Format::Slack, "k", &b, 0, 0, dash).body).unwrap();
        assert_eq!(
            slack["text"],
            format!("{line} · <https://decnet.example/attackers/u-1|open in DECNET>")
        );
        let discord: Value =
            serde_json::from_str(&render(Format::Discord, "k", &b, 0, 0, None).body).unwrap();
        assert_eq!(discord["content"], line);
        let teams: Value =
            serde_json::from_str(&render(Format::Teams, "k", &b, 0, 0, dash).body).unwrap();
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["text"], line);
        assert_eq!(
            card["actions"][0]["url"],
            "https://decnet.example/attackers/u-1"
        );
    }

    #[test]
    fn discord_content_is_capped() {
        let b = EventBody::new(
            "x",
            "system.log",
            "",
            0.0,
            json!({"message": "x".repeat(5000)}),
        );
        let d: Value =
            serde_json::from_str(&render(Format::Discord, "k", &b, 0, 0, None).body).unwrap();
        assert_eq!(d["content"].as_str().unwrap().chars().count(), DISCORD_MAX);
    }

    #[test]
    fn links_follow_the_subject() {
        let b = EventBody::new(
            "x",
            "identity.formed",
            "formed",
            0.0,
            json!({"identity_uuid": "i9"}),
        );
        assert_eq!(
            link(&b, Some("https://d.example")).as_deref(),
            Some("https://d.example/identities/i9")
        );
        let b = EventBody::new("x", "canary.t.triggered", "", 0.0, json!({}));
        assert_eq!(
            link(&b, Some("https://d.example")).as_deref(),
            Some("https://d.example")
        );
        assert_eq!(link(&b, None), None);
    }

    #[test]
    fn format_names_round_trip() {
        for f in ["generic", "standard", "slack", "teams", "discord"] {
            assert_eq!(Format::parse(f).map(Format::as_str), Some(f));
        }
        assert_eq!(Format::parse("xml"), None);
    }
}

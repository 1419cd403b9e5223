//! What the bus may say about a stored mail (intake §6 clause 12b, platform §5): domains and
//! counts derived from the artifact fields, never the addresses themselves.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::fields::Fields;

/// Domain part of an address as logged (`Name <user@Example.COM>`, `<user@x>`, `user@x`),
/// lower-cased; `None` when there is none.
pub fn address_domain(raw: &str) -> Option<String> {
    let inner = match (raw.rfind('<'), raw.rfind('>')) {
        (Some(a), Some(b)) if a < b => &raw[a + 1..b],
        _ => raw,
    };
    let (_, domain) = inner.trim().rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty() && !domain.contains(char::is_whitespace)).then_some(domain)
}

/// The addresses of an `rcpt_to` list (comma, semicolon or whitespace separated; a JSON-ish
/// list's brackets and quotes are ignored).
fn recipient_addresses(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(|p| p.trim_matches(|c: char| matches!(c, '[' | ']' | '"' | '\'')))
        .filter(|p| p.contains('@'))
}

/// Recipients of an `rcpt_to` field (comma, semicolon or whitespace separated; a JSON-ish
/// list's brackets and quotes are ignored): how many, and their domains in first-seen order.
pub fn recipient_domains(raw: &str) -> (u64, Vec<String>) {
    let mut count = 0;
    let mut domains: Vec<String> = Vec::new();
    for part in recipient_addresses(raw) {
        count += 1;
        if let Some(d) = address_domain(part) {
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
    }
    (count, domains)
}

/// The bus-safe part of a `message_stored` record (the `email.received` payload fields that
/// come from the artifact): subject, domains, counts and hashes, never an address.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailSummary {
    /// `subject`.
    pub subject: Option<String>,
    /// Domain of `from_hdr`.
    pub from_domain: Option<String>,
    /// Domain of the envelope sender `mail_from`.
    pub mail_from_domain: Option<String>,
    /// Envelope recipients in `rcpt_to`.
    pub rcpt_count: u64,
    /// Their domains, first-seen order, no duplicates.
    pub rcpt_domains: Vec<String>,
    /// `attachment_count` (0 when absent or not a number).
    pub attachment_count: u64,
    /// `stored_as` (empty when absent).
    pub stored_as: String,
    /// `sha256` of the stored message.
    pub body_sha256: Option<String>,
}

/// Summarise the fields of a stored mail.
pub fn summarize(f: &Fields) -> MailSummary {
    let text = |k: &str| f.get_nonempty(k).map(str::to_owned);
    let (rcpt_count, rcpt_domains) = recipient_domains(f.get("rcpt_to").unwrap_or(""));
    MailSummary {
        subject: text("subject"),
        from_domain: f.get("from_hdr").and_then(address_domain),
        mail_from_domain: f.get("mail_from").and_then(address_domain),
        rcpt_count,
        rcpt_domains,
        attachment_count: f
            .get("attachment_count")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        stored_as: text("stored_as").unwrap_or_default(),
        body_sha256: text("sha256"),
    }
}

/// SMTP event types that name recipients: `rcpt_to` (accepted RCPT, open-relay mode) and
/// `rcpt_denied` once per RCPT with the address in `value`; `message_accepted` with the
/// comma-joined list in `rcpt_to` at the end of DATA.
pub const RCPT_EVENT_TYPES: [&str; 3] = ["rcpt_to", "rcpt_denied", "message_accepted"];

/// Special-use top-level labels (RFC 6761 and lab names) that are never a victim domain.
const NOT_A_TARGET_TLD: [&str; 5] = ["invalid", "test", "localhost", "local", "example"];

/// One domain an attacker addressed over SMTP (`/attackers/{uuid}/smtp-targets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    /// Lower-cased domain.
    pub domain: String,
    /// Recipients addressed at it.
    pub count: u64,
    /// First time addressed.
    pub first_seen: NaiveDateTime,
    /// Last time addressed.
    pub last_seen: NaiveDateTime,
}

fn target_domain(address: &str) -> Option<String> {
    let d = address_domain(address)?;
    let tld = d.rsplit('.').next().unwrap_or(&d);
    (!NOT_A_TARGET_TLD.contains(&tld)).then_some(d)
}

/// Victim domains of an attacker's SMTP events `(event_type, fields, timestamp)`, most
/// addressed first (then by name). Every RCPT counts once; a `message_accepted` list only adds
/// domains no RCPT event named (its addresses normally arrived as RCPTs already, so counting
/// them again would double every recipient). Special-use names (`.test`, `.example`, …) are
/// left out.
pub fn smtp_targets<'a>(
    events: impl IntoIterator<Item = (&'a str, &'a Fields, NaiveDateTime)>,
) -> Vec<SmtpTarget> {
    fn add(map: &mut HashMap<String, SmtpTarget>, domain: String, at: NaiveDateTime) {
        let t = map.entry(domain.clone()).or_insert(SmtpTarget {
            domain,
            count: 0,
            first_seen: at,
            last_seen: at,
        });
        t.count += 1;
        t.first_seen = t.first_seen.min(at);
        t.last_seen = t.last_seen.max(at);
    }
    let mut rcpt: HashMap<String, SmtpTarget> = HashMap::new();
    let mut accepted: HashMap<String, SmtpTarget> = HashMap::new();
    for (event_type, f, at) in events {
        match event_type {
            "rcpt_to" | "rcpt_denied" => {
                let address = f
                    .get_nonempty("value")
                    .or_else(|| f.get_nonempty("rcpt_to"));
                if let Some(d) = address.and_then(target_domain) {
                    add(&mut rcpt, d, at);
                }
            }
            "message_accepted" => {
                for part in recipient_addresses(f.get("rcpt_to").unwrap_or("")) {
                    if let Some(d) = target_domain(part) {
                        add(&mut accepted, d, at);
                    }
                }
            }
            _ => {}
        }
    }
    for (d, t) in accepted {
        rcpt.entry(d).or_insert(t);
    }
    let mut out: Vec<SmtpTarget> = rcpt.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.domain.cmp(&b.domain)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_not_addresses() {
        assert_eq!(
            address_domain("Eve <eve@Evil.Example.>").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            address_domain("<bob@corp.example>").as_deref(),
            Some("corp.example")
        );
        assert_eq!(address_domain("a@b").as_deref(), Some("b"));
        assert_eq!(address_domain("no address"), None);
        assert_eq!(address_domain("x@"), None);
        let (n, d) = recipient_domains("<a@x.example>, b@Y.example; c@x.example");
        assert_eq!(n, 3);
        assert_eq!(d, vec!["x.example", "y.example"]);
        let (n, d) = recipient_domains(r#"["a@x.example","b@z.example"]"#);
        assert_eq!(
            (n, d),
            (2, vec!["x.example".to_owned(), "z.example".to_owned()])
        );
        assert_eq!(recipient_domains(""), (0, vec![]));
    }

    #[test]
    fn a_summary_carries_no_address() {
        let f: Fields = [
            ("stored_as", "m1.eml"),
            ("subject", "Invoice"),
            ("from_hdr", "Billing <billing@Corp.Example>"),
            ("mail_from", "<bounce@mailer.example>"),
            ("rcpt_to", "a@x.test, b@y.test"),
            ("attachment_count", " 2 "),
            ("sha256", "ab12"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let m = summarize(&f);
        assert_eq!(
            m,
            MailSummary {
                subject: Some("Invoice".into()),
                from_domain: Some("corp.example".into()),
                mail_from_domain: Some("mailer.example".into()),
                rcpt_count: 2,
                rcpt_domains: vec!["x.test".into(), "y.test".into()],
                attachment_count: 2,
                stored_as: "m1.eml".into(),
                body_sha256: Some("ab12".into()),
            }
        );
        assert!(!format!("{m:?}").contains('@'));
        let bare = summarize(
            &[("attachment_count".to_owned(), "many".to_owned())]
                .into_iter()
                .collect(),
        );
        assert_eq!(bare, MailSummary::default());
    }

    #[test]
    fn smtp_targets_count_rcpts_once_and_skip_special_names() {
        let at = |m: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 5, 1)
                .and_then(|d| d.and_hms_opt(10, m, 0))
                .unwrap()
        };
        let f = |pairs: &[(&str, &str)]| -> Fields {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let e1 = f(&[("value", "<ceo@Corp.COM>")]);
        let e2 = f(&[("value", "hr@corp.com")]);
        let e3 = f(&[("value", "x@bank.net"), ("reason", "relay denied")]);
        let e4 = f(&[("rcpt_to", "ceo@corp.com, ops@other.org, a@lab.test")]);
        let e5 = f(&[("value", "root@localhost")]);
        let events = [
            ("rcpt_to", &e1, at(1)),
            ("rcpt_to", &e2, at(5)),
            ("rcpt_denied", &e3, at(3)),
            ("message_accepted", &e4, at(6)),
            ("rcpt_to", &e5, at(7)),
            ("connect", &e1, at(9)),
        ];
        let t = smtp_targets(events);
        let got: Vec<(&str, u64, NaiveDateTime, NaiveDateTime)> = t
            .iter()
            .map(|t| (t.domain.as_str(), t.count, t.first_seen, t.last_seen))
            .collect();
        assert_eq!(
            got,
            vec![
                ("corp.com", 2, at(1), at(5)),
                ("bank.net", 1, at(3), at(3)),
                ("other.org", 1, at(6), at(6)),
            ]
        );
        assert!(smtp_targets([]).is_empty());
    }
}

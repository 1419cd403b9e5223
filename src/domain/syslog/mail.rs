//! What the bus may say about a stored mail (intake §6 clause 12b, platform §5): domains and
//! counts derived from the artifact fields, never the addresses themselves.

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

/// Recipients of an `rcpt_to` field (comma, semicolon or whitespace separated; a JSON-ish
/// list's brackets and quotes are ignored): how many, and their domains in first-seen order.
pub fn recipient_domains(raw: &str) -> (u64, Vec<String>) {
    let mut count = 0;
    let mut domains: Vec<String> = Vec::new();
    for part in raw
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(|p| p.trim_matches(|c: char| matches!(c, '[' | ']' | '"' | '\'')))
        .filter(|p| p.contains('@'))
    {
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
}

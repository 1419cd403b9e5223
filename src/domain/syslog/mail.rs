//! What the bus may say about a stored mail (intake §6 clause 12b, platform §5): domains and
//! counts derived from the artifact fields, never the addresses themselves.

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
}

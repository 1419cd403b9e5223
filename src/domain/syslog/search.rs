//! The `/logs` search language (spec §12): shell-style quoted tokens; `decky:`, `service:`,
//! `event:`, `attacker:`/`attacker-ip:`/`attacker_ip:` match a column exactly, any other
//! `key:value` matches `fields.key == value` (key sanitized to `[A-Za-z0-9_]`), a bare token
//! is a substring of raw_line/decky/service/attacker_ip. All tokens are AND-ed.

/// One parsed search token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchToken {
    /// Exact column match.
    Decky(String),
    /// Exact column match.
    Service(String),
    /// Exact `event_type` match.
    Event(String),
    /// Exact `attacker_ip` match.
    Attacker(String),
    /// `fields[key] == value`.
    Field(String, String),
    /// Substring of raw_line / decky / service / attacker_ip.
    Bare(String),
}

/// Split on whitespace honouring `'…'`, `"…"` and backslash escapes (unbalanced quotes
/// run to the end).
pub fn shell_split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                has = true;
            }
            (_, c) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// Parse a search string.
pub fn parse_search(q: &str) -> Vec<SearchToken> {
    shell_split(q)
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let Some((k, v)) = t.split_once(':') else {
                return SearchToken::Bare(t);
            };
            if k.is_empty() || v.is_empty() {
                return SearchToken::Bare(t);
            }
            match k.to_ascii_lowercase().as_str() {
                "decky" => SearchToken::Decky(v.to_owned()),
                "service" => SearchToken::Service(v.to_owned()),
                "event" => SearchToken::Event(v.to_owned()),
                "attacker" | "attacker-ip" | "attacker_ip" => SearchToken::Attacker(v.to_owned()),
                _ => {
                    let key: String = k
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if key.is_empty() {
                        SearchToken::Bare(t)
                    } else {
                        SearchToken::Field(key, v.to_owned())
                    }
                }
            }
        })
        .collect()
}

/// Escape `\`, `%` and `_` for a `LIKE … ESCAPE '\'` pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(
            parse_search(
                r#"decky:web-1 service:ssh event:auth attacker-ip:1.2.3.4 "two words" user:'ro ot' x%y bad:"#
            ),
            vec![
                SearchToken::Decky("web-1".into()),
                SearchToken::Service("ssh".into()),
                SearchToken::Event("auth".into()),
                SearchToken::Attacker("1.2.3.4".into()),
                SearchToken::Bare("two words".into()),
                SearchToken::Field("user".into(), "ro ot".into()),
                SearchToken::Bare("x%y".into()),
                SearchToken::Bare("bad:".into()),
            ]
        );
        assert_eq!(
            parse_search("we;ird-key:v"),
            vec![SearchToken::Field("weirdkey".into(), "v".into())]
        );
        assert!(parse_search("   ").is_empty());
        assert_eq!(escape_like(r"a_b%c\d"), r"a\_b\%c\\d");
    }
}

//! RFC 5424 structured data: parsing of `[SD-ID name="value" …]…` with the
//! §6.3.3 escapes (`\"`, `\\`, `\]`), and the matching encoder.

use super::error::SdError;
use super::fields::Fields;

/// The SD-ID whose parameters become a record's `fields`.
pub const RELAY_SD_ID: &str = "relay@55555";

/// Result of splitting an SD section: the relay parameters and the MSG text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdSplit<'a> {
    /// Parameters of the first `relay@55555` element (other SD-IDs ignored).
    pub fields: Fields,
    /// Text after the last SD element, trimmed.
    pub msg: &'a str,
}

/// Parse one or more SD elements at the start of `s` (which starts with `[`).
/// Errors carry the byte offset inside `s`.
pub fn parse_sd(s: &str) -> Result<SdSplit<'_>, (usize, SdError)> {
    let b = s.as_bytes();
    let mut pos = 0usize;
    let mut fields: Option<Fields> = None;
    while pos < b.len() && b[pos] == b'[' {
        pos += 1;
        let id_start = pos;
        while pos < b.len() && !matches!(b[pos], b' ' | b']') {
            pos += 1;
        }
        if pos == id_start {
            return Err((pos, SdError::EmptySdId));
        }
        let is_relay = fields.is_none() && &s[id_start..pos] == RELAY_SD_ID;
        let mut params = Fields::new();
        loop {
            match b.get(pos) {
                None => return Err((pos, SdError::UnterminatedElement)),
                Some(b']') => {
                    pos += 1;
                    break;
                }
                Some(b' ') => {
                    while pos < b.len() && b[pos] == b' ' {
                        pos += 1;
                    }
                    if b.get(pos) == Some(&b']') {
                        continue;
                    }
                    let (name, value, next) = parse_param(s, pos)?;
                    if is_relay {
                        params.insert(name, value);
                    }
                    pos = next;
                }
                Some(_) => {
                    let c = s[pos..].chars().next().unwrap_or('\u{fffd}');
                    return Err((pos, SdError::Unexpected(c)));
                }
            }
        }
        if is_relay {
            fields = Some(params);
        }
    }
    Ok(SdSplit {
        fields: fields.unwrap_or_default(),
        msg: s[pos..].trim(),
    })
}

/// Parse `name="value"` at `pos`; returns (name, unescaped value, next pos).
fn parse_param(s: &str, mut pos: usize) -> Result<(&str, String, usize), (usize, SdError)> {
    let b = s.as_bytes();
    let name_start = pos;
    while pos < b.len() && !matches!(b[pos], b'=' | b' ' | b']' | b'"') {
        pos += 1;
    }
    let name = &s[name_start..pos];
    if name.is_empty() {
        return Err((pos, SdError::EmptyParamName));
    }
    if b.get(pos) != Some(&b'=') {
        return Err((pos, SdError::MissingEquals(name.to_owned())));
    }
    pos += 1;
    if b.get(pos) != Some(&b'"') {
        return Err((pos, SdError::MissingQuote(name.to_owned())));
    }
    pos += 1;
    let vstart = pos;
    // Fast path: no escapes.
    let mut value = String::new();
    let mut seg_start = vstart;
    loop {
        match b.get(pos) {
            None => return Err((pos, SdError::UnterminatedValue(name.to_owned()))),
            Some(b'"') => {
                value.push_str(&s[seg_start..pos]);
                pos += 1;
                break;
            }
            Some(b'\\') => match b.get(pos + 1) {
                None => return Err((pos, SdError::UnterminatedValue(name.to_owned()))),
                Some(&c @ (b'"' | b'\\' | b']')) => {
                    value.push_str(&s[seg_start..pos]);
                    value.push(c as char);
                    pos += 2;
                    seg_start = pos;
                }
                // Any other escape is kept verbatim (RFC 5424 §6.3.3); the
                // escaped char may be multi-byte, so only skip the backslash.
                Some(_) => pos += 1,
            },
            Some(_) => pos += 1,
        }
    }
    let after = b.get(pos);
    if !matches!(after, None | Some(b' ' | b']')) {
        let c = s[pos..].chars().next().unwrap_or('\u{fffd}');
        return Err((pos, SdError::Unexpected(c)));
    }
    Ok((name, value, pos))
}

/// Escape a value for inclusion inside `"…"` of an SD-PARAM.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Render `[relay@55555 k="v" …]` (used by tests, benches and the listener's tooling).
pub fn render_relay_element<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("[");
    out.push_str(RELAY_SD_ID);
    for (k, v) in params {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(&escape_value(v));
        out.push('"');
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_params_and_msg() {
        let s = r#"[relay@55555 a="1" b="two words"] hello world "#;
        let r = parse_sd(s).unwrap();
        assert_eq!(r.fields.get("a"), Some("1"));
        assert_eq!(r.fields.get("b"), Some("two words"));
        assert_eq!(r.msg, "hello world");
    }

    #[test]
    fn escapes_including_bracket() {
        let s = r#"[relay@55555 q="say \"hi\"" p="C:\\tmp" br="a\]b]c" keep="\n"] tail"#;
        let r = parse_sd(s).unwrap();
        assert_eq!(r.fields.get("q"), Some("say \"hi\""));
        assert_eq!(r.fields.get("p"), Some("C:\\tmp"));
        assert_eq!(r.fields.get("br"), Some("a]b]c"));
        assert_eq!(r.fields.get("keep"), Some("\\n"));
        assert_eq!(r.msg, "tail");
    }

    #[test]
    fn other_sd_ids_are_ignored_and_first_relay_wins() {
        let s = r#"[timeQuality tzKnown="1" isSynced="1"][relay@55555 x="1"][relay@55555 x="2"] m"#;
        let r = parse_sd(s).unwrap();
        assert_eq!(r.fields.iter().collect::<Vec<_>>(), vec![("x", "1")]);
        assert_eq!(r.msg, "m");
        let r = parse_sd(r#"[timeQuality tzKnown="1"] CMD x"#).unwrap();
        assert!(r.fields.is_empty());
        assert_eq!(r.msg, "CMD x");
        let r = parse_sd("[meta]").unwrap();
        assert!(r.fields.is_empty());
        assert_eq!(r.msg, "");
    }

    #[test]
    fn malformed_elements_are_named() {
        assert!(matches!(parse_sd("[]"), Err((1, SdError::EmptySdId))));
        assert!(matches!(
            parse_sd(r#"[relay@55555 a="1""#),
            Err((_, SdError::UnterminatedElement))
        ));
        assert!(
            matches!(parse_sd(r#"[relay@55555 a="1"#), Err((_, SdError::UnterminatedValue(n))) if n == "a")
        );
        assert!(matches!(
            parse_sd(r#"[relay@55555 a="1\"#),
            Err((_, SdError::UnterminatedValue(_)))
        ));
        assert!(
            matches!(parse_sd(r#"[relay@55555 a 1]"#), Err((_, SdError::MissingEquals(n))) if n == "a")
        );
        assert!(matches!(
            parse_sd(r#"[relay@55555 a=1]"#),
            Err((_, SdError::MissingQuote(_)))
        ));
        assert!(matches!(
            parse_sd(r#"[relay@55555 ="1"]"#),
            Err((_, SdError::EmptyParamName))
        ));
        assert!(matches!(
            parse_sd(r#"[relay@55555 a="1"x]"#),
            Err((_, SdError::Unexpected('x')))
        ));
    }

    #[test]
    fn render_then_parse_round_trips() {
        let vals = [
            "plain",
            "q\"uote",
            "back\\slash",
            "br]acket",
            "]\\\"]",
            "",
            "é ☃",
        ];
        for v in vals {
            let el = render_relay_element([("k", v)]);
            let r = parse_sd(&el).unwrap();
            assert_eq!(r.fields.get("k"), Some(v), "{el}");
        }
    }
}

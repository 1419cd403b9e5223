//! The email prompt (realism.md §6.3), the em-dash policy (§6.4) and output parsing (§6.5).

use rand::seq::SliceRandom;
use rand::Rng;

use crate::domain::realism::{Persona, Tone};

/// Subject used when the model gave none.
pub const FALLBACK_SUBJECT: &str = "Business Communication";
/// Longest subject kept (the column holds 512 characters; §11.10).
pub const MAX_SUBJECT_CHARS: usize = 200;

/// ISO 639-1 code → language name; other codes verbatim.
pub fn language_label(code: &str) -> &str {
    match code {
        "en" => "English",
        "es" => "Spanish",
        "pt" => "Portuguese",
        "fr" => "French",
        "de" => "German",
        "it" => "Italian",
        "nl" => "Dutch",
        "ja" => "Japanese",
        "zh" => "Chinese",
        other => other,
    }
}

/// The em-dash rule shared by the email and file prompts.
pub fn em_dash_rule(uses_llms_heavily: bool) -> &'static str {
    if uses_llms_heavily {
        "Em-dashes are fine; write naturally."
    } else {
        "Do NOT use em-dashes (—) or en-dashes (–). Use commas, periods or parentheses \
         instead; em-dashes are a tell of machine-written text."
    }
}

/// Replace `—` and `–` with `, ` (and tidy the spacing around them).
pub fn strip_em_dashes(text: &str) -> String {
    if !text.contains(['\u{2014}', '\u{2013}']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{2014}' || c == '\u{2013}' {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push_str(", ");
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The em-dash policy applied to every body (email and file): stripped unless the persona
/// opted in with `uses_llms_heavily` (the reference filtered file bodies only; §11).
pub fn apply_em_dash_policy(persona: &Persona, text: &str) -> String {
    if persona.uses_llms_heavily {
        text.to_owned()
    } else {
        strip_em_dashes(text)
    }
}

/// Up to two of the sender's mannerisms (all when ≤ 2), drawn with `rng`.
pub fn pick_mannerisms<R: Rng + ?Sized>(sender: &Persona, rng: &mut R) -> Vec<String> {
    if sender.mannerisms.len() <= 2 {
        return sender.mannerisms.clone();
    }
    let mut m = sender.mannerisms.clone();
    m.shuffle(rng);
    m.truncate(2);
    m
}

fn tone_text(p: &Persona) -> &str {
    match (p.tone, p.tone_custom.as_deref()) {
        (Tone::Custom, Some(t)) => t,
        (t, _) => t.as_str(),
    }
}

/// `(prompt, mannerisms_used)` of §6.3. `parent` is `(subject, excerpt)` for a reply.
pub fn build_email_prompt<R: Rng + ?Sized>(
    sender: &Persona,
    recipient: &Persona,
    context_hint: &str,
    parent: Option<(&str, Option<&str>)>,
    rng: &mut R,
) -> (String, Vec<String>) {
    let used = pick_mannerisms(sender, rng);
    let lang = language_label(sender.language_or("en"));
    let mut p = String::with_capacity(1536);
    p.push_str("You write one realistic corporate email body in plain text.\n\n");
    p.push_str(&format!(
        "Sender:\n  Name: {}\n  Role: {}\n  Tone: {}\n  Mannerisms (must show through):\n",
        sender.name,
        sender.role,
        tone_text(sender)
    ));
    if used.is_empty() {
        p.push_str("  - (none given; write in the persona's tone)\n");
    } else {
        for m in &used {
            p.push_str(&format!("  - {m}\n"));
        }
    }
    p.push_str(&format!(
        "\nRecipient:\n  Name: {}\n  Role: {}\n\nContext hint: {context_hint}\n\n",
        recipient.name, recipient.role
    ));
    match parent {
        Some((subject, excerpt)) => p.push_str(&format!(
            "Thread context: this is a REPLY in an ongoing thread.\n  Parent subject: {subject}\n  \
             Parent excerpt: {}\n  Assume the recipient has read the parent message.\n\n",
            excerpt.unwrap_or("(no excerpt)")
        )),
        None => p.push_str("Thread context: this starts a NEW thread.\n\n"),
    }
    p.push_str("Hard rules:\n");
    p.push_str(&format!(
        "1. Write the body in {lang}. No translation, no code-switching.\n"
    ));
    p.push_str(&format!("2. {}\n", em_dash_rule(sender.uses_llms_heavily)));
    match parent {
        Some((subject, _)) => p.push_str(&format!(
            "3. Subject: the parent subject prefixed with 'Re: ' ({}), never doubled.\n",
            super::thread::reply_subject(subject)
        )),
        None => p.push_str("3. Subject: short and specific, at most 80 characters.\n"),
    }
    match sender.signature.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(sig) => p.push_str(&format!("4. Use this exact signature block:\n{sig}\n")),
        None => p.push_str("4. End with a plausible signature for the sender's role.\n"),
    }
    p.push_str(
        "5. Output only the email: first line 'Subject: <subject>', a blank line, then the \
         body. No commentary, no code fences, no preamble.\n",
    );
    (p, used)
}

/// Subject and body parsed from a model's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEmail {
    pub subject: String,
    pub body: String,
}

fn clean_subject(s: &str) -> String {
    // one line, no control characters, bounded
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.is_empty() {
        FALLBACK_SUBJECT.to_owned()
    } else {
        s.chars().take(MAX_SUBJECT_CHARS).collect()
    }
}

/// §6.5 output parsing: fences dropped, `Subject:` line extracted, fallback subject.
pub fn parse_output(raw: &str) -> ParsedEmail {
    let mut text = raw.trim().replace("\r\n", "\n");
    if text.starts_with("```") {
        text = match text.split_once('\n') {
            Some((_, rest)) => rest.to_owned(),
            None => String::new(),
        };
        let trimmed = text.trim_end();
        text = trimmed
            .strip_suffix("```")
            .unwrap_or(trimmed)
            .trim()
            .to_owned();
    }
    let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    let is_subject = first
        .get(..8)
        .is_some_and(|h| h.eq_ignore_ascii_case("subject:"));
    if is_subject {
        let subject = clean_subject(&first[8..]);
        let rest = rest.strip_prefix('\n').unwrap_or(rest);
        ParsedEmail {
            subject,
            body: rest.trim().to_owned(),
        }
    } else {
        ParsedEmail {
            subject: FALLBACK_SUBJECT.to_owned(),
            body: text.trim().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn persona(extra: serde_json::Value) -> Persona {
        let mut v = json!({"name": "Ana", "email": "ana@corp.example", "role": "Finance"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        let mut p = Persona::from_value(&v).unwrap();
        p.language.get_or_insert_with(|| "en".into());
        p
    }

    #[test]
    fn prompt_sections() {
        let a = persona(json!({}));
        let b = persona(json!({"name": "Bo", "email": "bo@corp.example", "language": "es"}));
        let mut rng = StdRng::seed_from_u64(1);
        let (p, used) = build_email_prompt(&a, &b, "Q3 budget", None, &mut rng);
        assert!(p.contains("in English"));
        assert!(p.contains("Do NOT use em-dashes"));
        assert!(p.contains("NEW thread"));
        assert!(p.contains("plausible signature"));
        assert!(used.is_empty());
        assert!(p.contains("(none given"));
        let (p, _) = build_email_prompt(&b, &a, "x", Some(("Re: Re: Q3 budget", None)), &mut rng);
        assert!(p.contains("in Spanish"));
        assert!(p.contains("REPLY in an ongoing thread"));
        assert!(p.contains("(no excerpt)"));
        assert!(p.contains("prefixed with 'Re: ' (Re: Q3 budget)"));
        let heavy = persona(
            json!({"uses_llms_heavily": true, "signature": "A.\nFinance",
            "tone": "custom", "tone_custom": "dry", "mannerisms": ["a", "b", "c", "d"]}),
        );
        let (p, used) = build_email_prompt(&heavy, &a, "x", None, &mut StdRng::seed_from_u64(7));
        assert!(p.contains("Em-dashes are fine"));
        assert!(p.contains("Use this exact signature block:\nA.\nFinance"));
        assert!(p.contains("Tone: dry"));
        assert_eq!(used.len(), 2);
        let (_, again) = build_email_prompt(&heavy, &a, "x", None, &mut StdRng::seed_from_u64(7));
        assert_eq!(used, again, "deterministic per seed");
        for m in &used {
            assert!(p.contains(&format!("  - {m}\n")));
        }
        let two = persona(json!({"mannerisms": ["x", "y"]}));
        assert_eq!(pick_mannerisms(&two, &mut rng), vec!["x", "y"]);
        assert_eq!(language_label("sv"), "sv");
    }

    #[test]
    fn em_dash_policy() {
        assert_eq!(strip_em_dashes("a — b–c"), "a, b, c");
        assert_eq!(strip_em_dashes("plain"), "plain");
        let plain = persona(json!({}));
        let heavy = persona(json!({"uses_llms_heavily": true}));
        assert!(!apply_em_dash_policy(&plain, "x — y").contains('—'));
        assert_eq!(apply_em_dash_policy(&heavy, "x — y"), "x — y");
    }

    #[test]
    fn parsing() {
        assert_eq!(
            parse_output("Subject: Q3 numbers\n\nHi Bo,\nsee attached.\n"),
            ParsedEmail {
                subject: "Q3 numbers".into(),
                body: "Hi Bo,\nsee attached.".into()
            }
        );
        assert_eq!(
            parse_output("```\nSUBJECT:  Hola \n\nCuerpo\n```"),
            ParsedEmail {
                subject: "Hola".into(),
                body: "Cuerpo".into()
            }
        );
        assert_eq!(
            parse_output("```text\nSubject:\n\nBody"),
            ParsedEmail {
                subject: FALLBACK_SUBJECT.into(),
                body: "Body".into()
            }
        );
        let p = parse_output("Hello there\nsecond");
        assert_eq!(p.subject, FALLBACK_SUBJECT);
        assert_eq!(p.body, "Hello there\nsecond");
        assert_eq!(parse_output("").body, "");
        let long = format!("Subject: {}\n\nb", "é".repeat(600));
        assert_eq!(
            parse_output(&long).subject.chars().count(),
            MAX_SUBJECT_CHARS
        );
        assert_eq!(parse_output("Subject: a\u{0}b\n\nx").subject, "a b");
    }
}

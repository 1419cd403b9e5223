//! POSIX shell quoting: the one function allowed to put data inside an `sh -c` string.
//!
//! decnetd builds commands as argv vectors. When a value really has to travel through a
//! shell (a script run with `sh -c` inside a decky), it is quoted by [`sh_quote`] and by
//! nothing else, so the rules live (and are tested) in one place.

use thiserror::Error;

/// Why a value cannot be quoted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    /// A NUL byte cannot be represented in a C string argument, so it is refused rather
    /// than silently truncating the value.
    #[error("value contains a NUL byte")]
    Nul,
}

/// Characters that never need quoting in a POSIX shell word.
fn is_safe_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'-'
        )
}

/// Quote `value` as one POSIX shell word.
///
/// * A non-empty value made only of `[A-Za-z0-9_@%+=:,./-]` is returned unchanged.
/// * Anything else is wrapped in single quotes; each `'` inside becomes `'"'"'` (close the
///   single-quoted run, emit a double-quoted `'`, reopen). Inside single quotes the shell
///   expands nothing: `$(…)`, backticks, `$VAR`, `\`, globbing and newlines are literal.
/// * The empty string becomes `''`.
/// * A NUL byte is rejected with [`QuoteError::Nul`].
pub fn sh_quote(value: &str) -> Result<String, QuoteError> {
    if value.as_bytes().contains(&0) {
        return Err(QuoteError::Nul);
    }
    if value.is_empty() {
        return Ok("''".to_owned());
    }
    if value.bytes().all(is_safe_byte) {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for ch in value.chars() {
        if ch == '\'' {
            out.push_str("'\"'\"'");
        } else {
            out.push(ch);
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn safe_words_stay_bare() {
        for w in [
            "abc",
            "/home/alice/notes.txt",
            "a-b_c",
            "10.0.0.5",
            "k=v,x:y@z%+",
        ] {
            assert_eq!(sh_quote(w).unwrap(), w);
        }
    }

    #[test]
    fn empty_is_two_quotes() {
        assert_eq!(sh_quote("").unwrap(), "''");
    }

    #[test]
    fn single_quote_is_escaped() {
        assert_eq!(sh_quote("it's").unwrap(), r#"'it'"'"'s'"#);
        assert_eq!(sh_quote("'").unwrap(), r#"''"'"''"#);
    }

    #[test]
    fn metacharacters_are_wrapped() {
        assert_eq!(sh_quote("a b").unwrap(), "'a b'");
        assert_eq!(sh_quote("$(id)").unwrap(), "'$(id)'");
        assert_eq!(sh_quote("`id`").unwrap(), "'`id`'");
        assert_eq!(sh_quote("~root").unwrap(), "'~root'");
        assert_eq!(sh_quote("*").unwrap(), "'*'");
        assert_eq!(sh_quote("a\nb").unwrap(), "'a\nb'");
    }

    #[test]
    fn nul_is_rejected() {
        assert_eq!(sh_quote("a\0b"), Err(QuoteError::Nul));
        assert_eq!(sh_quote("\0"), Err(QuoteError::Nul));
    }

    /// Run the quoted word through a real `/bin/sh` and check it comes back byte-identical:
    /// no expansion, no word splitting, no command substitution.
    #[test]
    fn real_shell_round_trips_hostile_inputs() {
        let hostile = [
            "plain",
            "",
            "it's",
            "''''",
            "$(touch /tmp/decnetd-quote-pwned)",
            "`touch /tmp/decnetd-quote-pwned`",
            "$HOME ${PATH} $0 $$",
            "a\nb\n; rm -rf /",
            "\\'\\\"",
            "\"double\" 'single'",
            "; echo pwned #",
            "| cat /etc/passwd &",
            "-n",
            "--help",
            "*",
            "?[a-z]",
            "\t tab\r\n",
            "ünïcödé ✓",
            "a'$(id)'b",
        ];
        for value in hostile {
            let quoted = sh_quote(value).unwrap();
            let script = format!("printf '%s' {quoted}");
            let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
            assert!(out.status.success(), "script failed: {script:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                value,
                "round trip of {value:?} via {quoted:?}"
            );
        }
        assert!(!std::path::Path::new("/tmp/decnetd-quote-pwned").exists());
    }
}

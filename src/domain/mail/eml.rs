//! EML rendering (realism.md §6.6, §11.10) with `mail-builder`: one `MIME-Version`, RFC 2047
//! encoded non-ASCII subjects and display names, a quoted-printable UTF-8 body, a `Date` with
//! the sender's real UTC offset and a Message-ID on the sender's domain.

use chrono::{DateTime, FixedOffset};
use mail_builder::encoders::quoted_printable::quoted_printable_encode;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::headers::Header;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

/// One message to render. Message-IDs carry their angle brackets.
#[derive(Debug, Clone, PartialEq)]
pub struct EmlMessage<'a> {
    pub from_name: &'a str,
    pub from_email: &'a str,
    pub to_name: &'a str,
    pub to_email: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// Sent time on the sender's clock (its offset is written).
    pub date: DateTime<FixedOffset>,
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    /// `References`, oldest first.
    pub references: Vec<&'a str>,
}

fn bare(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// Header-safe text: control characters (CR, LF, NUL…) become spaces so nothing can inject
/// a header.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `name <email>` with the display name as an RFC 2047 encoded-word when it is not ASCII
/// (never inside a quoted-string, which `mail-builder`'s address writer does), else a
/// quoted-string.
fn mailbox(name: &str, email: &str) -> std::io::Result<String> {
    let name = one_line(name);
    let email = one_line(email).replace(['<', '>', ' '], "");
    if name.is_empty() {
        return Ok(format!("<{email}>"));
    }
    if name.is_ascii() {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        return Ok(format!("\"{quoted}\" <{email}>"));
    }
    let mut enc = Vec::new();
    Text::new(name.as_str()).write_header(&mut enc, 6)?;
    let enc = String::from_utf8(enc).map_err(std::io::Error::other)?;
    // one line: Raw re-folds at spaces, and adjacent encoded-words are joined by decoders
    let enc = enc.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(format!("{enc} <{email}>"))
}

/// The `Date` header value: RFC 5322 with the numeric offset of `date`.
pub fn date_header(date: &DateTime<FixedOffset>) -> String {
    date.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// Render the message as RFC 5322 bytes (CRLF line ends).
pub fn render_eml(m: &EmlMessage<'_>) -> std::io::Result<Vec<u8>> {
    let body = m.body.replace("\r\n", "\n");
    let mut qp = Vec::with_capacity(body.len() + body.len() / 4);
    quoted_printable_encode(body.as_bytes(), &mut qp, true)?;
    let qp = String::from_utf8(qp).map_err(std::io::Error::other)?;
    let mut b = MessageBuilder::new()
        .header("From", Raw::new(mailbox(m.from_name, m.from_email)?))
        .header("To", Raw::new(mailbox(m.to_name, m.to_email)?))
        .subject(one_line(m.subject))
        .header("Date", Raw::new(date_header(&m.date)))
        .message_id(MessageId::new(bare(m.message_id)));
    if let Some(parent) = m.in_reply_to {
        b = b.in_reply_to(MessageId::new(bare(parent)));
    }
    if !m.references.is_empty() {
        b = b.references(MessageId::new_list(m.references.iter().map(|r| bare(r))));
    }
    b = b.body(MimePart::new("text/plain", qp).transfer_encoding("quoted-printable"));
    b.write_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn msg<'a>(subject: &'a str, body: &'a str, reply: bool) -> EmlMessage<'a> {
        EmlMessage {
            from_name: "Marta Quiroga",
            from_email: "mq@acme.example",
            to_name: "Renée Ödegaard",
            to_email: "ro@acme.example",
            subject,
            body,
            date: FixedOffset::west_opt(3 * 3600)
                .unwrap()
                .with_ymd_and_hms(2026, 4, 26, 9, 15, 0)
                .unwrap(),
            message_id: "<abc@acme.example>",
            in_reply_to: reply.then_some("<p2@acme.example>"),
            references: if reply {
                vec!["<p1@acme.example>", "<p2@acme.example>"]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn root_message_headers() {
        let raw = render_eml(&msg("Q3 budget", "Hi,\nsee below.\n", false)).unwrap();
        let s = String::from_utf8(raw).unwrap();
        assert_eq!(s.matches("MIME-Version:").count(), 1, "{s}");
        assert!(
            s.contains("Date: Sun, 26 Apr 2026 09:15:00 -0300\r\n"),
            "{s}"
        );
        assert!(s.contains("Message-ID: <abc@acme.example>\r\n"));
        assert!(s.contains("Subject: Q3 budget\r\n"));
        assert!(s.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(
            s.contains("From: \"Marta Quiroga\" <mq@acme.example>"),
            "{s}"
        );
        assert!(!s.contains("In-Reply-To") && !s.contains("References"));
        // the recipient's non-ASCII name is RFC 2047 encoded
        assert!(s.contains("To: =?utf-8?"), "{s}");
        assert!(s.is_ascii());
    }

    #[test]
    fn reply_and_non_ascii() {
        let raw = render_eml(&msg("Re: Überprüfung\r\nBcc: evil@x", "Grüße — MQ", true)).unwrap();
        let s = String::from_utf8(raw).unwrap();
        assert!(s.contains("In-Reply-To: <p2@acme.example>"));
        assert!(s.contains("References: <p1@acme.example>"), "{s}");
        assert!(s.contains("<p2@acme.example>"));
        assert!(s.contains("Subject: =?utf-8?"), "{s}");
        assert!(!s.contains("\r\nBcc:"), "no header injection");
        assert!(s.is_ascii());
    }
}

//! The thread model (realism.md §6.2, §6.6, §6.7, §6.9): new thread vs reply, `Re:` never
//! doubled, `In-Reply-To` / `References` chains, Message-IDs and spool paths.

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;

use crate::domain::realism::{Persona, ReplyLatency};

/// Probability of looking for a thread to reply to.
pub const REPLY_PROBABILITY: f64 = 0.6;
/// Spool directory the IMAP/POP3 decoys read recursively.
pub const SPOOL_DIR: &str = "/var/spool/decnet-emails";
/// Threads looked up per pair.
pub const THREAD_LOOKUP_LIMIT: i64 = 20;

/// Context hints of new threads (§6.2).
pub const CONTEXT_HINTS: [&str; 16] = [
    "Q3 budget review and approval",
    "Client presentation feedback",
    "Project deadline extension request",
    "Team building event planning",
    "IT system maintenance notification",
    "Quarterly performance review",
    "Vendor onboarding process",
    "Holiday schedule announcement",
    "Training session invitation",
    "Department restructuring update",
    "Client contract negotiation",
    "Security audit findings",
    "Sales strategy meeting",
    "Product launch timeline",
    "Office relocation update",
    "Travel reimbursement policy change",
];

/// `reply_subject(s)`: trim, strip every leading case-insensitive `re:` (and the spaces after
/// it), return `Re: <rest>`.
pub fn reply_subject(subject: &str) -> String {
    let mut rest = subject.trim();
    loop {
        let b = rest.as_bytes();
        if b.len() >= 3 && b[..2].eq_ignore_ascii_case(b"re") && b[2] == b':' {
            rest = rest[3..].trim_start();
        } else {
            break;
        }
    }
    format!("Re: {rest}")
}

/// The `References` of a reply to `parent_id` whose own `References` were `parent_refs`:
/// the whole chain oldest first, single spaces (realism.md §11.8: the reference kept one step).
pub fn references_for_reply(parent_refs: &str, parent_id: &str) -> String {
    let mut ids: Vec<&str> = parent_refs.split_whitespace().collect();
    if !parent_id.trim().is_empty() && !ids.contains(&parent_id.trim()) {
        ids.push(parent_id.trim());
    }
    ids.join(" ")
}

/// The sender's domain (text after the first `@`, trimmed; `localhost` when blank).
pub fn sender_domain(email: &str) -> &str {
    match email.split_once('@') {
        Some((_, d)) if !d.trim().is_empty() => d.trim(),
        _ => "localhost",
    }
}

/// `<32 hex@sender-domain>` (§6.6).
pub fn new_message_id<R: Rng + ?Sized>(sender_email: &str, rng: &mut R) -> String {
    let id = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
    format!("<{}@{}>", id.simple(), sender_domain(sender_email))
}

/// File name of a message in its thread directory: Message-ID without brackets, `@` → `_at_`,
/// `.eml`; any byte outside `[A-Za-z0-9._-]` becomes `_` so a hostile id cannot escape the
/// directory.
pub fn eml_file_name(message_id: &str) -> String {
    let bare = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let safe: String = bare
        .replace('@', "_at_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.eml", safe.trim_start_matches('.'))
}

/// `/var/spool/decnet-emails/<thread>/<file>.eml`.
pub fn eml_path(thread_id: &str, message_id: &str) -> String {
    format!("{SPOOL_DIR}/{thread_id}/{}", eml_file_name(message_id))
}

/// Minimum gap between a message and its reply (§6.9 extension, implemented).
pub fn min_reply_gap(latency: ReplyLatency) -> TimeDelta {
    match latency {
        ReplyLatency::Fast => TimeDelta::minutes(5),
        ReplyLatency::Normal => TimeDelta::hours(1),
        ReplyLatency::Slow => TimeDelta::hours(8),
    }
}

/// The newest successful message between the pair (the candidate parent).
#[derive(Debug, Clone, PartialEq)]
pub struct ParentMessage {
    pub thread_id: String,
    pub message_id: String,
    pub subject: String,
    /// The parent's own `References` (space separated, may be empty).
    pub references: String,
    /// When the parent was written (its `Date`).
    pub sent_at: DateTime<Utc>,
}

/// New thread or reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ThreadPlan {
    New {
        thread_id: String,
        context_hint: String,
    },
    Reply {
        thread_id: String,
        parent_message_id: String,
        references: String,
        subject: String,
        parent_subject: String,
    },
}

impl ThreadPlan {
    pub fn thread_id(&self) -> &str {
        match self {
            ThreadPlan::New { thread_id, .. } | ThreadPlan::Reply { thread_id, .. } => thread_id,
        }
    }

    pub fn is_reply(&self) -> bool {
        matches!(self, ThreadPlan::Reply { .. })
    }

    pub fn parent_message_id(&self) -> Option<&str> {
        match self {
            ThreadPlan::Reply {
                parent_message_id, ..
            } => Some(parent_message_id),
            ThreadPlan::New { .. } => None,
        }
    }

    /// The hint given to the generator (the reply subject for replies).
    pub fn context_hint(&self) -> &str {
        match self {
            ThreadPlan::New { context_hint, .. } => context_hint,
            ThreadPlan::Reply { subject, .. } => subject,
        }
    }
}

/// Whether to look for a parent at all (the 0.6 roll).
pub fn wants_reply<R: Rng + ?Sized>(rng: &mut R) -> bool {
    rng.gen_bool(REPLY_PROBABILITY)
}

/// New thread or reply (§6.2 step 5, §6.9): a parent younger than the replier's
/// `reply_latency` gap is treated as "no thread to reply to".
pub fn decide_thread<R: Rng + ?Sized>(
    parent: Option<&ParentMessage>,
    replier: &Persona,
    now: DateTime<Utc>,
    rng: &mut R,
) -> ThreadPlan {
    if let Some(p) = parent {
        if now - p.sent_at >= min_reply_gap(replier.reply_latency) {
            return ThreadPlan::Reply {
                thread_id: p.thread_id.clone(),
                parent_message_id: p.message_id.clone(),
                references: references_for_reply(&p.references, &p.message_id),
                subject: reply_subject(&p.subject),
                parent_subject: p.subject.clone(),
            };
        }
    }
    let id = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
    ThreadPlan::New {
        thread_id: id.hyphenated().to_string(),
        context_hint: CONTEXT_HINTS[rng.gen_range(0..CONTEXT_HINTS.len())].to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn persona(latency: &str) -> Persona {
        Persona::from_value(&json!({"name": "A", "email": "a@corp.example", "role": "r",
            "reply_latency": latency}))
        .unwrap()
    }

    #[test]
    fn reply_subjects_never_double() {
        assert_eq!(reply_subject("Q3"), "Re: Q3");
        assert_eq!(reply_subject("Re: Re: Q3"), "Re: Q3");
        assert_eq!(reply_subject("RE: Q3"), "Re: Q3");
        assert_eq!(reply_subject("  re:re:  Q3 budget "), "Re: Q3 budget");
        assert_eq!(reply_subject("Revisión"), "Re: Revisión");
        assert_eq!(reply_subject("Ré: x"), "Re: Ré: x");
        assert_eq!(reply_subject(&reply_subject("Q3")), "Re: Q3");
    }

    #[test]
    fn references_chain() {
        assert_eq!(references_for_reply("", "<m1@x>"), "<m1@x>");
        assert_eq!(references_for_reply("<m1@x>", "<m2@x>"), "<m1@x> <m2@x>");
        assert_eq!(
            references_for_reply("<m1@x>  <m2@x>", "<m2@x>"),
            "<m1@x> <m2@x>"
        );
    }

    #[test]
    fn message_ids_and_paths() {
        let mut rng = StdRng::seed_from_u64(1);
        let id = new_message_id("jo@corp.example", &mut rng);
        assert!(
            id.starts_with('<') && id.ends_with("@corp.example>"),
            "{id}"
        );
        assert_eq!(id.len(), 1 + 32 + 1 + "corp.example".len() + 1);
        assert!(new_message_id("jo@", &mut rng).ends_with("@localhost>"));
        assert_eq!(eml_file_name("<abc@corp.com>"), "abc_at_corp.com.eml");
        assert_eq!(eml_file_name("<../../x@y/z>"), "_.._x_at_y_z.eml");
        assert_eq!(
            eml_path("t-1", "<abc@corp.com>"),
            "/var/spool/decnet-emails/t-1/abc_at_corp.com.eml"
        );
    }

    #[test]
    fn decide_new_and_reply_with_latency() {
        let now = Utc::now();
        let mut rng = StdRng::seed_from_u64(3);
        let p = persona("normal");
        let plan = decide_thread(None, &p, now, &mut rng);
        assert!(!plan.is_reply());
        assert_eq!(plan.thread_id().len(), 36);
        assert!(CONTEXT_HINTS.contains(&plan.context_hint()));

        let parent = ParentMessage {
            thread_id: "t".into(),
            message_id: "<m2@x>".into(),
            subject: "Re: Q3 budget".into(),
            references: "<m1@x>".into(),
            sent_at: now - TimeDelta::hours(2),
        };
        let reply = decide_thread(Some(&parent), &p, now, &mut rng);
        assert_eq!(
            reply,
            ThreadPlan::Reply {
                thread_id: "t".into(),
                parent_message_id: "<m2@x>".into(),
                references: "<m1@x> <m2@x>".into(),
                subject: "Re: Q3 budget".into(),
                parent_subject: "Re: Q3 budget".into(),
            }
        );
        // a slow replier does not answer a two-hour-old message; a fast one answers at 5 min
        assert!(!decide_thread(Some(&parent), &persona("slow"), now, &mut rng).is_reply());
        let young = ParentMessage {
            sent_at: now - TimeDelta::minutes(5),
            ..parent.clone()
        };
        assert!(decide_thread(Some(&young), &persona("fast"), now, &mut rng).is_reply());
        assert!(!decide_thread(Some(&young), &p, now, &mut rng).is_reply());
    }
}

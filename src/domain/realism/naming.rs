//! Path templates per content class (realism.md §4.6).
//!
//! Invariant: no generated basename carries 8 or more consecutive digits (the epoch-suffix
//! tell of the first implementation).

use rand::seq::SliceRandom;
use rand::Rng;

use super::classes::{ClassFamily, ContentClass};
use super::persona::home_dir_for;

pub const NOTE_NAMES: &[&str] = &[
    "notes.txt",
    "scratch.md",
    "ideas.txt",
    "Untitled-3.txt",
    "draft.md",
    "keys.txt",
    "passwords.txt",
    "TODO.md",
];
pub const TODO_NAMES: &[&str] = &[
    "TODO.md",
    "todo.txt",
    "things.md",
    "tasks.txt",
    "punchlist.md",
];
pub const DRAFT_NAMES: &[&str] = &[
    "Q3-budget-DRAFT.md",
    "proposal.md",
    "letter.txt",
    "rfc-internal.md",
    "memo.txt",
    "1on1-notes.md",
];
pub const SCRIPT_NAMES: &[&str] = &[
    "backup.sh",
    "deploy.sh",
    "cleanup.sh",
    "rotate.sh",
    "fix.py",
    "tmp.py",
    "scratch.py",
];
/// The logrotate skeleton for cron logs. The reference also names `cron.log.2.gz`, but the
/// planner writes plain text, and a `.gz` that `zcat` rejects is a tell (realism.md §11.9):
/// decnetd only plants the uncompressed generations.
pub const CRON_LOGS: &[&str] = &["/var/log/cron.log", "/var/log/cron.log.1"];
/// Every name of the cron logrotate set (what [`CRON_LOGS`] must stay within).
pub const CRON_LOGROTATE_SET: &[&str] = &[
    "/var/log/cron.log",
    "/var/log/cron.log.1",
    "/var/log/cron.log.2.gz",
];
pub const DAEMON_LOGS: &[&str] = &[
    "/var/log/daemon.log",
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/auth.log",
    "/var/log/auth.log.1",
];
/// Prefix of the mkstemp-shaped cache files.
pub const CACHE_PREFIX: &str = "/tmp/.cache-";
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A class whose paths are not chosen by the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0} files are written by the MailDripper, not the planner")]
    Email(ContentClass),
    #[error("{0} artefacts are built by the canary planter, not the planner")]
    Canary(ContentClass),
}

impl TemplateError {
    /// The error for a class outside the planner's templates, `None` for a templated class.
    pub(crate) fn for_class(class: ContentClass) -> Option<TemplateError> {
        match class.family() {
            ClassFamily::Email => Some(TemplateError::Email(class)),
            ClassFamily::Canary => Some(TemplateError::Canary(class)),
            ClassFamily::User | ClassFamily::System => None,
        }
    }
}

fn choose<R: Rng + ?Sized>(names: &'static [&'static str], rng: &mut R) -> &'static str {
    names.choose(rng).copied().unwrap_or_default()
}

/// Random `[a-z0-9]{len}` token, as `mkstemp` would draw.
pub fn random_token<R: Rng + ?Sized>(len: usize, rng: &mut R) -> String {
    (0..len)
        .map(|_| char::from(TOKEN_ALPHABET[rng.gen_range(0..TOKEN_ALPHABET.len())]))
        .collect()
}

/// `make_path(class, persona)`: an absolute container path for a new file of `class`
/// authored by `persona` (display name). Email and canary classes are an error.
pub fn make_path<R: Rng + ?Sized>(
    class: ContentClass,
    persona: &str,
    rng: &mut R,
) -> Result<String, TemplateError> {
    fn home<R: Rng + ?Sized>(persona: &str, names: &'static [&'static str], rng: &mut R) -> String {
        format!("{}/{}", home_dir_for(persona), choose(names, rng))
    }
    Ok(match class {
        ContentClass::Note => home(persona, NOTE_NAMES, rng),
        ContentClass::Todo => home(persona, TODO_NAMES, rng),
        ContentClass::Draft => home(persona, DRAFT_NAMES, rng),
        ContentClass::Script => home(persona, SCRIPT_NAMES, rng),
        ContentClass::LogCron => choose(CRON_LOGS, rng).to_owned(),
        ContentClass::LogDaemon => choose(DAEMON_LOGS, rng).to_owned(),
        ContentClass::CacheTmp => format!("{CACHE_PREFIX}{}", random_token(6, rng)),
        ContentClass::Email => return Err(TemplateError::Email(class)),
        ContentClass::CanaryAwsCreds
        | ContentClass::CanaryEnvFile
        | ContentClass::CanaryGitConfig
        | ContentClass::CanarySshKey
        | ContentClass::CanaryHoneydoc
        | ContentClass::CanaryHoneydocDocx
        | ContentClass::CanaryHoneydocPdf
        | ContentClass::CanaryMysqlDump
        | ContentClass::CanaryFingerprintHtml
        | ContentClass::CanaryFingerprintSvg => return Err(TemplateError::Canary(class)),
    })
}

/// Length of the longest run of ASCII digits in `s`.
pub fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn basename(p: &str) -> &str {
        p.rsplit('/').next().unwrap_or(p)
    }

    #[test]
    fn user_classes_under_home_of_login() {
        let mut rng = StdRng::seed_from_u64(7);
        for class in ContentClass::USER {
            for _ in 0..30 {
                let p = make_path(class, "John Smith", &mut rng).unwrap();
                assert!(p.starts_with("/home/johnsmith/"), "{p}");
                assert!(!basename(&p).is_empty());
                let p = make_path(class, "C-3PO!", &mut rng).unwrap();
                assert!(p.starts_with("/home/user/"), "{p}");
            }
        }
    }

    #[test]
    fn system_classes_follow_their_skeletons() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen_cron = std::collections::HashSet::new();
        for _ in 0..200 {
            let cron = make_path(ContentClass::LogCron, "x", &mut rng).unwrap();
            assert!(CRON_LOGROTATE_SET.contains(&cron.as_str()), "{cron}");
            seen_cron.insert(cron);
            let daemon = make_path(ContentClass::LogDaemon, "x", &mut rng).unwrap();
            assert!(DAEMON_LOGS.contains(&daemon.as_str()), "{daemon}");
            let cache = make_path(ContentClass::CacheTmp, "x", &mut rng).unwrap();
            let token = cache.strip_prefix(CACHE_PREFIX).unwrap();
            assert_eq!(token.len(), 6, "{cache}");
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
        assert_eq!(seen_cron.len(), CRON_LOGS.len());
    }

    #[test]
    fn email_and_canary_classes_are_errors() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            make_path(ContentClass::Email, "x", &mut rng),
            Err(TemplateError::Email(ContentClass::Email))
        );
        for c in ContentClass::CANARY {
            assert_eq!(make_path(c, "x", &mut rng), Err(TemplateError::Canary(c)));
        }
    }

    #[test]
    fn digit_run_helper() {
        assert_eq!(longest_digit_run("notes-1777315854.txt"), 10);
        assert_eq!(longest_digit_run("1on1-notes.md"), 1);
        assert_eq!(longest_digit_run(""), 0);
    }

    #[test]
    fn static_name_tables_have_no_long_digit_runs() {
        for name in NOTE_NAMES
            .iter()
            .chain(TODO_NAMES)
            .chain(DRAFT_NAMES)
            .chain(SCRIPT_NAMES)
            .chain(CRON_LOGS)
            .chain(DAEMON_LOGS)
        {
            assert!(longest_digit_run(basename(name)) < 8, "{name}");
        }
    }

    proptest! {
        #[test]
        fn no_basename_has_eight_digits(seed in any::<u64>(), persona in ".{0,40}", idx in 0usize..7) {
            let class = [ContentClass::USER.as_slice(), ContentClass::SYSTEM.as_slice()].concat()[idx];
            let mut rng = StdRng::seed_from_u64(seed);
            let path = make_path(class, &persona, &mut rng).unwrap();
            prop_assert!(path.starts_with('/'));
            prop_assert!(longest_digit_run(basename(&path)) < 8, "{}", path);
            // the persona never leaks into the path except as a safe login
            prop_assert!(!path.contains(".."));
            prop_assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)), "{}", path);
        }
    }
}

//! File bodies per content class (realism.md §4.7) and edit-in-place mutators (§4.8).
//!
//! Every body ends with `\n`. Decisions beyond the reference (realism.md §11.9): log lines
//! run forward in time and end before the file's planned mtime (`BodyContext::until`), each
//! daemon line has its own timestamp, templates contain no em-dashes, drafts are signed with
//! the persona's first name and edited TODO files keep their trailing newline.

use chrono::{DateTime, Duration, Timelike, Utc};
use rand::seq::{index, SliceRandom};
use rand::Rng;

use super::classes::ContentClass;
use super::naming::{random_token, TemplateError};
use super::persona::login_for;

/// Where and when a body is written.
#[derive(Debug, Clone, Copy)]
pub struct BodyContext<'a> {
    /// Persona display name (author).
    pub persona: &'a str,
    /// Host name stamped into log lines (the decky's name).
    pub hostname: &'a str,
    /// Log lines are dated strictly before this instant (the file's planned mtime).
    pub until: DateTime<Utc>,
}

impl BodyContext<'_> {
    fn host(&self) -> &str {
        let h = self.hostname.trim();
        if h.is_empty() || h.chars().any(char::is_whitespace) {
            "localhost"
        } else {
            h
        }
    }

    fn signer(&self) -> &str {
        self.persona.split_whitespace().next().unwrap_or("")
    }
}

pub const NOTE_LINES: &[&str] = &[
    "follow up with the team on this",
    "remember to ping the on-call",
    "ask about the staging migration timeline",
    "todo: rotate keys; check on backup task",
    "this is broken in prod; talk to ops monday",
    "check the runbook before the next shift",
    "copy yesterday's meeting notes to the wiki",
    "auditor wants an answer by friday, keep it short",
];

pub const TODO_ITEMS: &[&str] = &[
    "rotate keys",
    "review pr",
    "clean up logs",
    "update docs",
    "follow up on ticket",
    "test backup restore",
    "deploy to staging",
    "ack auditor email",
    "patch CVE backlog",
];

const DRAFT_FOLLOW_UPS: &[&str] = &[
    "Follow-up: I will send the deck once finance signs off on the numbers.\n",
    "P.S. Looping in ops on the rollout order, they know that part better than I do.\n",
    "Let me know if any of this needs another pass.\n",
];

const SCRIPT_COMMENTS: &[&str] = &[
    "# TODO: handle the empty-input case\n",
    "# hardened the error path after the last incident\n",
    "# shellcheck complains here but this is what the runbook says\n",
];

const SCRIPTS: &[&str] = &[
    r#"#!/usr/bin/env bash
# nightly database dump, run from cron at 02:30
set -euo pipefail

dest=/var/backups
stamp=$(date +%F)
dump="/tmp/all-databases-$stamp.sql"

mysqldump --all-databases --single-transaction > "$dump"
tar -czf "$dest/mysql-$stamp.tar.gz" -C /tmp "$(basename "$dump")"
rm -f "$dump"
echo "backup written to $dest/mysql-$stamp.tar.gz"
"#,
    r#"#!/usr/bin/env bash
# prune rotated logs older than a month
set -e

find /var/log -name '*.log.*.gz' -mtime +30 -delete
df -h /var/log
"#,
    r#"#!/usr/bin/env python3
"""One-off fix for the weekly report job."""
import sys


def main() -> int:
    print("report job patched, rerun it by hand")
    return 0


if __name__ == "__main__":
    sys.exit(main())
"#,
];

const CRON_COMMANDS: &[&str] = &[
    "(root) CMD (run-parts /etc/cron.daily)",
    "(root) CMD (run-parts /etc/cron.hourly)",
    "(www-data) CMD (cd /var/www && /usr/bin/php artisan schedule:run)",
    "(backup) CMD (/usr/local/bin/backup.sh)",
    "(root) CMD (test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))",
];

fn syslog_stamp(t: DateTime<Utc>) -> String {
    t.format("%b %e %H:%M:%S").to_string()
}

/// `n` distinct instants, oldest first, each a whole number of `unit`s (1..=`span`) before
/// `until`.
fn ascending_instants<R: Rng + ?Sized>(
    until: DateTime<Utc>,
    n: usize,
    span: usize,
    unit: Duration,
    rng: &mut R,
) -> Vec<DateTime<Utc>> {
    let n = n.min(span);
    let mut offsets: Vec<i32> = index::sample(rng, span, n)
        .into_iter()
        .map(|o| i32::try_from(o).unwrap_or(i32::MAX - 1) + 1)
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets.into_iter().map(|o| until - unit * o).collect()
}

fn sample_lines<R: Rng + ?Sized>(
    pool: &[&str],
    min: usize,
    max: usize,
    rng: &mut R,
) -> Vec<String> {
    let n = rng.gen_range(min..=max).min(pool.len());
    pool.choose_multiple(rng, n)
        .map(|s| (*s).to_owned())
        .collect()
}

fn body_note<R: Rng + ?Sized>(rng: &mut R) -> String {
    sample_lines(NOTE_LINES, 2, 5, rng).join("\n") + "\n"
}

fn todo_line<R: Rng + ?Sized>(item: &str, done_probability: f64, rng: &mut R) -> String {
    let mark = if rng.gen_bool(done_probability) {
        'x'
    } else {
        ' '
    };
    format!("- [{mark}] {item}")
}

fn body_todo<R: Rng + ?Sized>(rng: &mut R) -> String {
    sample_lines(TODO_ITEMS, 3, 7, rng)
        .iter()
        .map(|item| todo_line(item, 0.33, rng) + "\n")
        .collect()
}

fn body_draft<R: Rng + ?Sized>(ctx: &BodyContext<'_>, rng: &mut R) -> String {
    let signer = ctx.signer();
    match rng.gen_range(0..3) {
        0 => format!(
            "Hi team,\n\n\
             Quick status update: the migration is still on track for the end of the month. \
             The soak test on staging turned up a regression in the login flow; a fix is in \
             review and should land this week.\n\n\
             Thanks,\n{signer}\n"
        ),
        1 => format!(
            "Hi all,\n\n\
             Following up on this morning's meeting. Action items:\n\n\
             - engineering owns the deployment plan\n\
             - ops drafts the runbook changes\n\
             - we regroup on Friday to confirm the date\n\n\
             {signer}\n"
        ),
        _ => format!(
            "All,\n\n\
             Here is the proposal in short:\n\n\
             1. No change to the data model in this release\n\
             2. The new endpoint ships behind a feature flag\n\
             3. Rolling back is a single config change\n\n\
             Could I get your feedback by EOD?\n\n\
             {signer}\n"
        ),
    }
}

fn body_script<R: Rng + ?Sized>(rng: &mut R) -> String {
    (*SCRIPTS.choose(rng).unwrap_or(&SCRIPTS[0])).to_owned()
}

fn cron_line<R: Rng + ?Sized>(ctx: &BodyContext<'_>, at: DateTime<Utc>, rng: &mut R) -> String {
    let pid = rng.gen_range(1000..=99_999);
    let cmd = CRON_COMMANDS
        .choose(rng)
        .copied()
        .unwrap_or(CRON_COMMANDS[0]);
    format!("{} {} CRON[{pid}]: {cmd}", syslog_stamp(at), ctx.host())
}

fn body_log_cron<R: Rng + ?Sized>(ctx: &BodyContext<'_>, rng: &mut R) -> String {
    let n = rng.gen_range(8..=24);
    // cron fires on the minute: one line per distinct minute over the last n hours, zero to
    // two seconds past the minute.
    let base = ctx
        .until
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(ctx.until);
    ascending_instants(base, n, n * 60, Duration::minutes(1), rng)
        .into_iter()
        .map(|m| {
            let at = m + Duration::seconds(rng.gen_range(0..=2));
            cron_line(ctx, at, rng) + "\n"
        })
        .collect()
}

fn random_ip<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!(
        "10.{}.{}.{}",
        rng.gen_range(0..=255),
        rng.gen_range(0..=255),
        rng.gen_range(2..=254)
    )
}

fn daemon_message<R: Rng + ?Sized>(ctx: &BodyContext<'_>, uptime: f64, rng: &mut R) -> String {
    let pid = rng.gen_range(1000..=65_000);
    match rng.gen_range(0..7) {
        0 => "systemd[1]: Starting Daily apt download activities...".to_owned(),
        1 => "systemd[1]: apt-daily.service: Succeeded.".to_owned(),
        2 => "systemd[1]: Reached target Multi-User System.".to_owned(),
        3 => {
            let mac: Vec<String> = (0..14)
                .map(|_| format!("{:02x}", rng.gen::<u8>()))
                .collect();
            format!(
                "kernel: [{uptime:.6}] [UFW BLOCK] IN=eth0 OUT= MAC={} SRC={} DST={} LEN=44 \
                 TOS=0x00 PREC=0x00 TTL={} ID={} PROTO=TCP SPT={} DPT={} WINDOW=1024 RES=0x00 \
                 SYN URGP=0",
                mac.join(":"),
                random_ip(rng),
                random_ip(rng),
                rng.gen_range(40..=250),
                rng.gen_range(1..=65_535),
                rng.gen_range(1024..=65_535),
                [23, 445, 3389, 8080, 5900]
                    .choose(rng)
                    .copied()
                    .unwrap_or(23),
            )
        }
        4 => format!(
            "sshd[{pid}]: pam_unix(sshd:session): session opened for user {}(uid=1000) by (uid=0)",
            login_for(ctx.persona)
        ),
        5 => format!(
            "sshd[{pid}]: Received disconnect from {} port {}:11: disconnected by user",
            random_ip(rng),
            rng.gen_range(32_768..=60_999)
        ),
        _ => format!("CRON[{pid}]: pam_unix(cron:session): session closed for user root"),
    }
}

fn body_log_daemon<R: Rng + ?Sized>(ctx: &BodyContext<'_>, rng: &mut R) -> String {
    let n = rng.gen_range(10..=30);
    let span = 6 * 3600;
    let boot_uptime = rng.gen_range(50_000.0..2_000_000.0);
    let first = ctx.until - Duration::seconds(span as i64);
    ascending_instants(ctx.until, n, span, Duration::seconds(1), rng)
        .into_iter()
        .map(|at| {
            let uptime = boot_uptime + (at - first).num_seconds() as f64 + rng.gen::<f64>();
            format!(
                "{} {} {}\n",
                syslog_stamp(at),
                ctx.host(),
                daemon_message(ctx, uptime, rng)
            )
        })
        .collect()
}

fn body_cache_tmp<R: Rng + ?Sized>(rng: &mut R) -> String {
    let n = rng.gen_range(64..=256);
    format!("session={}\n", random_token(n, rng))
}

/// `make_body(class, persona)`: a template body for a new file. Email and canary classes are
/// an error (their bytes come from the MailDripper and the canary planter).
pub fn make_body<R: Rng + ?Sized>(
    class: ContentClass,
    ctx: &BodyContext<'_>,
    rng: &mut R,
) -> Result<String, TemplateError> {
    if let Some(err) = TemplateError::for_class(class) {
        return Err(err);
    }
    Ok(match class {
        ContentClass::Note => body_note(rng),
        ContentClass::Todo => body_todo(rng),
        ContentClass::Draft => body_draft(ctx, rng),
        ContentClass::Script => body_script(rng),
        ContentClass::LogCron => body_log_cron(ctx, rng),
        ContentClass::LogDaemon => body_log_daemon(ctx, rng),
        _ => body_cache_tmp(rng),
    })
}

/// A class that cannot be edited in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} files are not edited in place")]
pub struct NotEditable(pub ContentClass);

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn edit_todo<R: Rng + ?Sized>(prev: &str, rng: &mut R) -> String {
    let mut lines: Vec<String> = prev.lines().map(str::to_owned).collect();
    let unchecked: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- [ ]"))
        .map(|(i, _)| i)
        .collect();
    // 0 = flip, 1 = append, 2 = both
    let op = if unchecked.is_empty() {
        1
    } else {
        rng.gen_range(0..3)
    };
    if op != 1 {
        if let Some(&i) = unchecked.choose(rng) {
            lines[i] = lines[i].replacen("- [ ]", "- [x]", 1);
        }
    }
    if op != 0 {
        let item = TODO_ITEMS.choose(rng).copied().unwrap_or(TODO_ITEMS[0]);
        lines.push(todo_line(item, 0.15, rng));
    }
    with_newline(lines.join("\n"))
}

fn append_line(prev: &str, line: &str) -> String {
    let mut out = prev.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    with_newline(out)
}

/// `next_iteration(class, persona, prev)`: the next plausible version of a planted file.
/// User files grow (a TODO may also tick a box); logs are append-only. `ctx.until` dates the
/// appended log line.
pub fn next_iteration<R: Rng + ?Sized>(
    class: ContentClass,
    prev: &str,
    ctx: &BodyContext<'_>,
    rng: &mut R,
) -> Result<String, NotEditable> {
    let pick = |pool: &'static [&'static str], rng: &mut R| pool.choose(rng).copied().unwrap_or("");
    Ok(match class {
        ContentClass::Todo => edit_todo(prev, rng),
        ContentClass::Note => append_line(prev, pick(NOTE_LINES, rng)),
        ContentClass::Draft => format!("{}\n\n{}", prev.trim_end(), pick(DRAFT_FOLLOW_UPS, rng)),
        ContentClass::Script => format!("{}\n{}", prev.trim_end(), pick(SCRIPT_COMMENTS, rng)),
        ContentClass::LogCron => {
            let at = ctx.until - Duration::seconds(rng.gen_range(1..=59));
            append_line(prev.trim_end(), &cron_line(ctx, at, rng))
        }
        ContentClass::LogDaemon => {
            let at = ctx.until - Duration::seconds(rng.gen_range(1..=59));
            let uptime = rng.gen_range(50_000.0..2_000_000.0);
            let line = format!(
                "{} {} {}",
                syslog_stamp(at),
                ctx.host(),
                daemon_message(ctx, uptime, rng)
            );
            append_line(prev.trim_end(), &line)
        }
        other => return Err(NotEditable(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, TimeZone};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ctx() -> BodyContext<'static> {
        BodyContext {
            persona: "John Smith",
            hostname: "omega-decky",
            until: Utc.with_ymd_and_hms(2026, 4, 20, 11, 30, 0).unwrap(),
        }
    }

    fn templated() -> Vec<ContentClass> {
        [
            ContentClass::USER.as_slice(),
            ContentClass::SYSTEM.as_slice(),
        ]
        .concat()
    }

    /// Parse the leading `Mon DD HH:MM:SS` of a log line (year of `ctx().until`).
    fn stamp_of(line: &str) -> DateTime<Utc> {
        let stamp = &line[..15];
        NaiveDateTime::parse_from_str(&format!("2026 {stamp}"), "%Y %b %e %H:%M:%S")
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .and_utc()
    }

    #[test]
    fn every_inert_class_has_a_non_empty_body() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            for class in templated() {
                let body = make_body(class, &ctx(), &mut rng).unwrap();
                assert!(body.trim().len() > 3, "{class}: {body:?}");
                assert!(body.ends_with('\n'), "{class}");
                assert!(
                    !body.contains('\u{2014}') && !body.contains('\u{2013}'),
                    "{class}"
                );
            }
        }
    }

    #[test]
    fn email_and_canary_have_no_template() {
        let mut rng = StdRng::seed_from_u64(0);
        assert!(make_body(ContentClass::Email, &ctx(), &mut rng).is_err());
        for c in ContentClass::CANARY {
            assert_eq!(
                make_body(c, &ctx(), &mut rng),
                Err(TemplateError::Canary(c))
            );
        }
    }

    #[test]
    fn note_lines_are_distinct_pool_lines() {
        for seed in 0..50 {
            let body =
                make_body(ContentClass::Note, &ctx(), &mut StdRng::seed_from_u64(seed)).unwrap();
            let lines: Vec<&str> = body.lines().collect();
            assert!((2..=5).contains(&lines.len()), "{body:?}");
            assert!(lines.iter().all(|l| NOTE_LINES.contains(l)));
            let set: std::collections::HashSet<_> = lines.iter().collect();
            assert_eq!(set.len(), lines.len());
        }
    }

    #[test]
    fn todo_lines_are_checkboxes() {
        let mut checked = 0;
        for seed in 0..50 {
            let body =
                make_body(ContentClass::Todo, &ctx(), &mut StdRng::seed_from_u64(seed)).unwrap();
            let lines: Vec<&str> = body.lines().collect();
            assert!((3..=7).contains(&lines.len()));
            for l in &lines {
                assert!(l.starts_with("- [ ] ") || l.starts_with("- [x] "), "{l:?}");
                assert!(TODO_ITEMS.contains(&&l[6..]));
            }
            checked += lines.iter().filter(|l| l.starts_with("- [x]")).count();
        }
        assert!(checked > 0);
    }

    #[test]
    fn scripts_start_with_shebangs_of_two_kinds() {
        let mut shebangs = std::collections::HashSet::new();
        for seed in 0..20 {
            let body = make_body(
                ContentClass::Script,
                &ctx(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            assert!(body.starts_with("#!"));
            shebangs.insert(body.lines().next().unwrap().to_owned());
        }
        assert!(shebangs.len() >= 2, "{shebangs:?}");
    }

    #[test]
    fn python_script_keeps_its_indentation() {
        let py = SCRIPTS
            .iter()
            .find(|s| s.starts_with("#!/usr/bin/env python3"))
            .unwrap();
        assert!(py.contains("\n    print(") && py.contains("\n    return 0\n"));
        assert!(SCRIPTS
            .iter()
            .all(|s| s.ends_with('\n') && !s.ends_with("\n\n")));
    }

    #[test]
    fn drafts_signed_by_persona() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..30 {
            let body = make_body(
                ContentClass::Draft,
                &ctx(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            assert!(body.trim_end().ends_with("John"), "{body}");
            seen.insert(body);
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn cron_lines_are_syslog_cron_lines_in_order_before_until() {
        for seed in 0..30 {
            let body = make_body(
                ContentClass::LogCron,
                &ctx(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            let lines: Vec<&str> = body.lines().collect();
            assert!((8..=24).contains(&lines.len()));
            let mut last = None;
            for l in &lines {
                assert!(
                    l.contains(" omega-decky CRON[") && l.contains("CMD ("),
                    "{l}"
                );
                let pid: u32 = l
                    .split("CRON[")
                    .nth(1)
                    .unwrap()
                    .split(']')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1000..=99_999).contains(&pid));
                let t = stamp_of(l);
                assert!(t < ctx().until, "{l}");
                assert!(last.is_none_or(|p| p <= t), "out of order: {l}");
                last = Some(t);
            }
        }
    }

    #[test]
    fn daemon_lines_distinct_times_in_order() {
        for seed in 0..30 {
            let body = make_body(
                ContentClass::LogDaemon,
                &ctx(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            let lines: Vec<&str> = body.lines().collect();
            assert!((10..=30).contains(&lines.len()));
            let stamps: Vec<_> = lines.iter().map(|l| stamp_of(l)).collect();
            assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{body}");
            assert!(stamps.iter().all(|t| *t < ctx().until));
            assert!(lines.iter().all(|l| l[16..].starts_with("omega-decky ")));
        }
    }

    #[test]
    fn cache_is_session_token() {
        for seed in 0..30 {
            let body = make_body(
                ContentClass::CacheTmp,
                &ctx(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            let token = body
                .strip_prefix("session=")
                .unwrap()
                .strip_suffix('\n')
                .unwrap();
            assert!((64..=256).contains(&token.len()));
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }

    #[test]
    fn hostile_hostname_falls_back() {
        let c = BodyContext {
            hostname: "evil host\nCRON",
            ..ctx()
        };
        let body = make_body(ContentClass::LogCron, &c, &mut StdRng::seed_from_u64(1)).unwrap();
        assert!(body.lines().all(|l| l.contains(" localhost CRON[")));
    }

    #[test]
    fn todo_edit_flips_or_appends_and_never_shrinks() {
        let prev = "- [ ] rotate keys\n- [x] review pr\n- [ ] update docs\n";
        let mut flipped = false;
        for seed in 0..40 {
            let next = next_iteration(
                ContentClass::Todo,
                prev,
                &ctx(),
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            assert!(next.len() >= prev.len());
            assert!(next.ends_with('\n'));
            let n_prev = prev.lines().count();
            assert!(next.lines().count() >= n_prev);
            let unchecked_after = next
                .lines()
                .take(n_prev)
                .filter(|l| l.starts_with("- [ ]"))
                .count();
            if unchecked_after < 2 {
                flipped = true;
            }
            assert!(next.lines().all(|l| l.starts_with("- [")));
        }
        assert!(flipped, "no flip within 40 seeds");
        // nothing unchecked: append only
        let all_done = "- [x] a\n- [x] b\n";
        let next = next_iteration(
            ContentClass::Todo,
            all_done,
            &ctx(),
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap();
        assert!(next.starts_with(all_done));
        assert_eq!(next.lines().count(), 3);
        // missing trailing newline is repaired, not lost
        let next = next_iteration(
            ContentClass::Todo,
            "- [ ] a",
            &ctx(),
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap();
        assert!(next.ends_with('\n'));
    }

    #[test]
    fn note_draft_script_grow_and_keep_prefix() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            for class in [
                ContentClass::Note,
                ContentClass::Draft,
                ContentClass::Script,
            ] {
                let prev = make_body(class, &ctx(), &mut rng).unwrap();
                let next = next_iteration(class, &prev, &ctx(), &mut rng).unwrap();
                assert!(next.len() > prev.len(), "{class}");
                assert!(next.starts_with(prev.trim_end()), "{class}");
                assert!(next.ends_with('\n'));
                if class == ContentClass::Script {
                    assert!(next.lines().last().unwrap().starts_with('#'));
                }
            }
        }
        // a note without trailing newline gets a separator
        let next = next_iteration(
            ContentClass::Note,
            "abc",
            &ctx(),
            &mut StdRng::seed_from_u64(0),
        )
        .unwrap();
        assert!(next.starts_with("abc\n"));
    }

    #[test]
    fn logs_are_append_only() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            for class in [ContentClass::LogCron, ContentClass::LogDaemon] {
                let prev = make_body(class, &ctx(), &mut rng).unwrap();
                let next = next_iteration(class, &prev, &ctx(), &mut rng).unwrap();
                assert!(next.starts_with(&prev), "{class}");
                assert_eq!(next.lines().count(), prev.lines().count() + 1);
                assert!(stamp_of(next.lines().last().unwrap()) < ctx().until);
            }
        }
    }

    #[test]
    fn non_editable_classes_error() {
        let mut rng = StdRng::seed_from_u64(0);
        for c in [
            ContentClass::CacheTmp,
            ContentClass::Email,
            ContentClass::CanarySshKey,
        ] {
            assert_eq!(
                next_iteration(c, "x", &ctx(), &mut rng),
                Err(NotEditable(c))
            );
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        for class in templated() {
            let a = make_body(class, &ctx(), &mut StdRng::seed_from_u64(42)).unwrap();
            let b = make_body(class, &ctx(), &mut StdRng::seed_from_u64(42)).unwrap();
            assert_eq!(a, b);
        }
    }
}

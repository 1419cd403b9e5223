//! The TTP tagger worker (issue #19 item 4, worker name `ttp`): tags ingested attacker
//! activity with ATT&CK tactics/techniques ([`crate::domain::ttp`]) and stores one `ttp_tags`
//! row per (log line, rule), so the campaign projection's phase maps are filled on real data.
//!
//! It runs off the ingest hot path: a [`TickJob`] woken by `attacker.scored` (published after
//! each profiler pass) that reads the log lines above its own cursor and at or below the
//! profiler's (so the observation row of every line exists), in pages of [`PAGE_LINES`]; each
//! page's tags and the cursor advance commit in one transaction. It then publishes one
//! `ttp.tagged` per observation that got new tags, which wakes the campaign clusterer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDateTime;
use futures::future::BoxFuture;

use crate::actors::clusterer::TickError;
use crate::actors::tick_worker::{TickJob, TickOutcome, TickWorker};
use crate::actors::topics::{Event, TtpTagged};
use crate::db::models::ttp::TtpTag;
use crate::db::repo::ttp as repo;
use crate::db::{new_uuid, now_utc, Db};
use crate::domain::syslog::observation::{check_indexable, command_text};
use crate::domain::syslog::{parse_json_record, parse_line_bytes, Record};
use crate::domain::ttp::{tag_record, TtpMatch};

/// Worker name (the original's `ttp` worker).
pub const NAME: &str = "ttp";
/// Log lines read, tagged and committed per page.
pub const PAGE_LINES: i64 = 5_000;
/// Longest stored evidence text, in characters.
pub const EVIDENCE_MAX_CHARS: usize = 512;

/// What one tagger tick did.
#[derive(Debug, Clone, Default)]
pub struct TtpTickOutcome {
    /// Log lines read.
    pub lines: usize,
    /// Tag rows written.
    pub tags: usize,
    /// One event per observation with new tags.
    pub tagged: Vec<TtpTagged>,
}

/// Per observation: its identity, the new tag uuids, the distinct techniques.
type NewTagsOf = (Option<String>, Vec<String>, BTreeSet<String>);

/// One tagged line, before its observation is resolved.
struct LineTags {
    log_id: i64,
    ip: String,
    decky: String,
    service: String,
    at: NaiveDateTime,
    evidence: String,
    matches: Vec<TtpMatch>,
}

fn parse(raw: &str) -> Option<Record> {
    let rec = if raw.starts_with('{') {
        parse_json_record(raw)
    } else {
        parse_line_bytes(raw.as_bytes())
    };
    rec.ok()
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// Parse and tag one page (pure; runs on the blocking pool).
fn tag_page(rows: &[(i64, String)]) -> Vec<LineTags> {
    let tagged = crate::domain::par::map(rows, |(id, raw)| {
        let rec = parse(raw)?;
        let at = check_indexable(&rec).ok()?;
        let matches = tag_record(&rec);
        if matches.is_empty() {
            return None;
        }
        let evidence = command_text(&rec).unwrap_or_else(|| rec.event_type.clone());
        Some(LineTags {
            log_id: *id,
            ip: rec.attacker_ip,
            decky: rec.decky,
            service: rec.service,
            at,
            evidence: truncate_chars(&evidence, EVIDENCE_MAX_CHARS),
            matches,
        })
    });
    tagged.into_iter().flatten().collect()
}

/// One tagger tick: every page above the cursor, then the events.
pub async fn run_ttp_tick(db: &Db) -> Result<TtpTickOutcome, TickError> {
    let mut out = TtpTickOutcome::default();
    let mut per_attacker: BTreeMap<String, NewTagsOf> = BTreeMap::new();
    loop {
        let page = repo::read_untagged(db, PAGE_LINES).await?;
        if page.rows.is_empty() {
            break;
        }
        let n = page.rows.len();
        let rows = page.rows;
        let lines = tokio::task::spawn_blocking(move || tag_page(&rows))
            .await
            .map_err(|e| TickError::Join(e.to_string()))?;
        let ips: Vec<&str> = lines
            .iter()
            .map(|l| l.ip.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let owners: HashMap<String, (String, Option<String>)> =
            repo::attacker_uuids_by_ip(db, &ips).await?;
        let now = now_utc();
        let mut tags: Vec<TtpTag> = Vec::new();
        for l in &lines {
            let Some((attacker, identity)) = owners.get(&l.ip) else {
                continue;
            };
            for m in &l.matches {
                let uuid = new_uuid();
                let slot = per_attacker
                    .entry(attacker.clone())
                    .or_insert_with(|| (identity.clone(), Vec::new(), BTreeSet::new()));
                slot.1.push(uuid.clone());
                slot.2.insert(m.technique_id.to_owned());
                tags.push(TtpTag {
                    uuid,
                    attacker_uuid: attacker.clone(),
                    decky_id: l.decky.clone(),
                    service: l.service.clone(),
                    tactic_id: m.tactic_id.to_owned(),
                    technique_id: m.technique_id.to_owned(),
                    rule_id: m.rule_id.to_owned(),
                    log_id: l.log_id,
                    evidence: l.evidence.clone(),
                    observed_at: l.at,
                    created_at: now,
                });
            }
        }
        out.lines += n;
        out.tags += tags.len();
        repo::commit_tags(db, tags, page.next_cursor).await?;
        if (n as i64) < PAGE_LINES {
            break;
        }
    }
    out.tagged = per_attacker
        .into_iter()
        .map(
            |(attacker_uuid, (identity_uuid, tag_uuids, techniques))| TtpTagged {
                attacker_uuid,
                identity_uuid,
                session_id: None,
                tag_uuids,
                techniques_added: techniques.into_iter().collect(),
            },
        )
        .collect();
    Ok(out)
}

/// The tagger as a [`TickJob`].
pub struct TtpJob;

impl TickOutcome for TtpTickOutcome {
    fn items(&self) -> usize {
        self.lines
    }
    fn events(&self) -> Vec<Event> {
        self.tagged.iter().cloned().map(Event::TtpTagged).collect()
    }
}

impl TickJob for TtpJob {
    const NAME: &'static str = NAME;
    const WAKE_PATTERN: &'static str = "attacker.scored";
    type Outcome = TtpTickOutcome;

    fn run(db: Db) -> BoxFuture<'static, Result<TtpTickOutcome, TickError>> {
        Box::pin(async move { run_ttp_tick(&db).await })
    }
}

/// The `ttp` worker.
pub type TtpTagger = TickWorker<TtpJob>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_tagged_per_line_and_untaggable_lines_are_skipped() {
        let rows = vec![
            (1, "<134>1 2026-05-14T09:20:10+00:00 web-01 ssh - command [relay@55555 src=\"203.0.113.5\" command=\"uname -a; crontab -l\"]".to_owned()),
            (2, "<134>1 2026-05-14T09:20:11+00:00 web-01 ssh - connect [relay@55555 src=\"203.0.113.5\"]".to_owned()),
            (3, "garbage".to_owned()),
            (4, "<134>1 2026-05-14T09:20:12+00:00 web-01 ssh - command [relay@55555 command=\"id\"]".to_owned()),
        ];
        let t = tag_page(&rows);
        assert_eq!(t.len(), 1, "only line 1 is tagged (4 has no attacker ip)");
        assert_eq!(t[0].log_id, 1);
        assert_eq!(t[0].ip, "203.0.113.5");
        assert_eq!(t[0].evidence, "uname -a; crontab -l");
        let ids: Vec<_> = t[0].matches.iter().map(|m| m.technique_id).collect();
        assert_eq!(ids, ["T1082", "T1053"]);
    }

    #[test]
    fn evidence_is_cut_on_a_character_boundary() {
        assert_eq!(truncate_chars("ééé", 2), "éé");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}

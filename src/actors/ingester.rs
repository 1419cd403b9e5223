//! The `ingester` worker: three sources feed one batch pipeline.
//!
//! * the tail of `DECNET_INGEST_LOG_FILE` (raw RFC 5424 lines, or the reference's `.json`
//!   records — a line starting with `{` is read as one), its byte offset stored in the `state`
//!   table **in the same transaction** as the batch's rows, truncation/rotation detected, a
//!   partial last line left for the next read;
//! * the syslog listeners (plain TCP on loopback, TLS with client certificates), RFC 6587
//!   octet-counted or newline framed, and RELP, whose messages are acknowledged only after
//!   their batch commits (a line's [`Ack`], sent by the commit), see [`listener`];
//! * [`ingest_files`], the core of `decnetd ingest FILE…`.
//!
//! Parsing, extraction, aggregation and correlation are the pure functions of
//! [`crate::domain::syslog`]; this module schedules, reads, commits, retries and publishes.
//! A line that does not parse is quarantined with its reason and counted; a database error
//! retries the batch without advancing the offset; rows are deduplicated on the line hash so
//! replays never double anything.

pub mod listener;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::actors::heartbeat::start_beating;
use crate::actors::topics::{
    AttackerObserved, AttackerScored, BatchCommitted, CredentialCaptured, CredentialReuseDetected,
    EmailReceived, Event, LogLine, SmtpProbePending,
};
use crate::actors::{Beat, Beating, Deps, ExitGuard, RegistryHandle, Shutdown};
use crate::config::IngestSettings;
use crate::db::models::intake::NewQuarantined;
use crate::db::repo::intake::{
    self as repo, CommitInput, CommitOutcome, PreparedRecord, ProfileOutcome,
};
use crate::db::{now_utc, repo::state, Db, DbError};
use crate::domain::syslog::collector::PendingAdmissions;
use crate::domain::syslog::framing::FrameError;
use crate::domain::syslog::mail;
use crate::domain::syslog::observation::iso;
use crate::domain::syslog::reuse::Finding;
use crate::domain::syslog::{
    extract, parse_json_record, parse_line, storable_text, Admission, CollectorFilter,
    ExtractConfig, ParseError, TrustedProxies,
};

/// `state` key of the file offset.
pub const POSITION_KEY: &str = "ingest_worker_position";
/// Largest read from the ingest file at once.
const READ_CHUNK: usize = 4 << 20;
/// Longest wait before committing a batch holding a line a RELP sender waits to see
/// acknowledged (lines arriving meanwhile join the batch).
const ACK_LINGER: Duration = Duration::from_millis(5);
/// Longest pause between two reads of the tailed file, milliseconds (shorter when
/// `batch_max_wait_ms` is).
const TAIL_POLL_MS: u64 = 200;
/// While lines keep arriving, a profiler or credential-reuse pass that took `d` is not run
/// again before `BACKLOG_PASS_SPACING × d` has passed: passes take at most a tenth of a
/// backlog's time. (With 3, a 100 000-line flood spent ~25 % of its time in profiler passes
/// that each rewrote every attacker row, and the live paths fell behind `decnetd ingest`,
/// which folds once at its end.)
const BACKLOG_PASS_SPACING: u32 = 9;
/// Shortest time between two credential-reuse passes.
const REUSE_MIN_SPACING: Duration = Duration::from_secs(1);
/// Shortest time between two credential-reuse passes while listener lines keep arriving. The
/// listener path returns to its loop every `backlog_slice_ms` (1 s), and a pass there re-reads every
/// credential group: during a 100 000-line TCP flood four passes of 0.1-0.3 s ran that the
/// file tail (which drains before its loop turns) and replay (one pass at the end) never ran.
/// Findings still follow a flood within this long; the pass after it runs at once.
const REUSE_BACKLOG_SPACING: Duration = Duration::from_secs(5);
/// How long after a credential-reuse pass that took `took` the next may run: while lines keep
/// arriving ([`REUSE_BACKLOG_SPACING`], or [`BACKLOG_PASS_SPACING`] × `took` when longer), else
/// [`REUSE_MIN_SPACING`].
fn reuse_spacing(backlog: bool, took: Duration) -> Duration {
    if backlog {
        REUSE_BACKLOG_SPACING.max(took * BACKLOG_PASS_SPACING)
    } else {
        REUSE_MIN_SPACING
    }
}

/// Consecutive failed commits after which the worker stops (the supervisor restarts it).
const MAX_CONSECUTIVE_FAILURES: u32 = 8;

/// Errors of the ingest runtime.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Reading an input file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A listener could not start.
    #[error("syslog listener: {0}")]
    Listener(String),
    /// A batch's parse task did not finish (it panicked or was cancelled).
    #[error("parse task failed: {0}")]
    Parse(String),
}

/// One line as received, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// Bytes without the line terminator.
    pub bytes: Vec<u8>,
    /// Peer CN when received over TLS.
    pub source_worker: Option<String>,
    /// Where it came from (`file:…`, `tcp:…`, `tls:…`, `cli:…`), for quarantine rows.
    pub source: Arc<str>,
    /// Set when the reader already knows the line cannot be a record (a framing error, an
    /// oversize line): it is quarantined with this reason without being parsed.
    pub rejected: Option<Reject>,
    /// Where to report that the batch holding this line committed (RELP acknowledges a
    /// message only then).
    pub ack: Option<Ack>,
}

/// A committed line's acknowledgement: its RELP transaction number, sent to its connection.
#[derive(Debug, Clone)]
pub struct Ack {
    /// RELP TXNR.
    pub txnr: u64,
    /// The connection's acknowledgement queue.
    pub to: tokio::sync::mpsc::UnboundedSender<u64>,
}

impl PartialEq for Ack {
    fn eq(&self, o: &Self) -> bool {
        self.txnr == o.txnr && self.to.same_channel(&o.to)
    }
}

impl Eq for Ack {}

impl Ack {
    /// Tell the connection (gone connections are ignored: their client resends).
    pub fn send(&self) {
        let _ = self.to.send(self.txnr);
    }
}

/// Why a reader rejected a line before parsing (quarantine `reason_code` and `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Stable reason code (`framing`).
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

impl RawLine {
    /// A line as received.
    pub fn new(bytes: Vec<u8>, source: Arc<str>, source_worker: Option<String>) -> Self {
        RawLine {
            bytes,
            source_worker,
            source,
            rejected: None,
            ack: None,
        }
    }

    /// Bytes a reader could not frame (quarantined with reason `framing`).
    pub fn rejected(
        bytes: Vec<u8>,
        source: Arc<str>,
        source_worker: Option<String>,
        why: &FrameError,
    ) -> Self {
        RawLine {
            bytes,
            source_worker,
            source,
            rejected: Some(Reject {
                code: FRAMING,
                reason: why.to_string(),
            }),
            ack: None,
        }
    }

    /// The same line, acknowledged through `ack` once its batch commits.
    pub fn with_ack(mut self, ack: Ack) -> Self {
        self.ack = Some(ack);
        self
    }
}

/// Quarantine reason code of rejected frames and oversize lines.
pub const FRAMING: &str = "framing";

/// Counters shown in the worker's health `extra`.
#[derive(Debug, Default)]
pub struct IngestCounters {
    pub lines: AtomicU64,
    pub logs_inserted: AtomicU64,
    pub duplicates: AtomicU64,
    pub quarantined: AtomicU64,
    pub parse_errors: AtomicU64,
    pub filtered: AtomicU64,
    pub bounties: AtomicU64,
    pub credentials: AtomicU64,
    pub batches: AtomicU64,
    pub db_errors: AtomicU64,
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub timeouts: AtomicU64,
    pub tail_errors: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub relp_acks: AtomicU64,
    pub reuse_findings: AtomicU64,
    pub profile_passes: AtomicU64,
    pub attackers_created: AtomicU64,
}

impl IngestCounters {
    fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Snapshot as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("lines", &self.lines),
            ("logs_inserted", &self.logs_inserted),
            ("duplicates", &self.duplicates),
            ("quarantined", &self.quarantined),
            ("parse_errors", &self.parse_errors),
            ("filtered", &self.filtered),
            ("bounties", &self.bounties),
            ("credentials", &self.credentials),
            ("batches", &self.batches),
            ("db_errors", &self.db_errors),
            ("connections", &self.connections),
            ("connections_refused", &self.connections_refused),
            ("timeouts", &self.timeouts),
            ("tail_errors", &self.tail_errors),
            ("frames_rejected", &self.frames_rejected),
            ("relp_acks", &self.relp_acks),
            ("reuse_findings", &self.reuse_findings),
            ("profile_passes", &self.profile_passes),
            ("attackers_created", &self.attackers_created),
        ] {
            m.insert(k.into(), Value::from(v.load(Ordering::Relaxed)));
        }
        m
    }
}

/// The shared batch pipeline: parse → collector filter → extract → commit → publish.
pub struct Pipeline {
    db: Db,
    registry: Option<RegistryHandle>,
    extract: ExtractConfig,
    filter: CollectorFilter,
    counters: Arc<IngestCounters>,
    /// Committed rows not yet folded into `attackers`.
    profile_dirty: bool,
    profile_interval: Duration,
    last_profile: Option<std::time::Instant>,
    last_profile_took: Duration,
    /// After a failed pass, no retry before this (not even when idle).
    profile_retry_at: Option<std::time::Instant>,
    /// Identity of the tailed file, stored with every position ([`FileTail::identity`]).
    tail_identity: Option<Map<String, Value>>,
    /// The supervisor's shutdown grace (bounds the drain of a stop).
    pub shutdown_grace_s: f64,
    /// The rows committed since the last pass, already folded (from that pass on).
    fold: Option<Fold>,
    /// Keep [`Pipeline::fold`] (see [`Pipeline::set_fold_hints`]).
    fold_hints: bool,
}

/// The fold hint of a [`Pipeline`], or the blocking task extending it with the last committed
/// batch (off the writer's loop; awaited by the next commit or pass, which it precedes).
enum Fold {
    Ready(repo::FoldHint),
    /// `None` when the hint outgrew [`repo::FOLD_HINT_MAX_ROWS`].
    Folding(tokio::task::JoinHandle<Option<repo::FoldHint>>),
}

/// Wait before retrying a failed profiler pass (the daemon loop wakes every 200 ms, and an
/// idle input would otherwise retry on every wake).
pub const PROFILE_RETRY_MIN: Duration = Duration::from_secs(1);

/// One line after the pure, per-line part of [`Pipeline::prepare`].
enum Parsed {
    Empty,
    Quarantined(NewQuarantined),
    Record(Box<PreparedRecord>),
}

/// A quarantine row for `l`: its text as the text columns can hold it, and its exact bytes
/// (hashed before any lossy conversion) when that text is not exactly them.
fn quarantine_row(
    l: &RawLine,
    text: &str,
    exact: bool,
    code: &str,
    reason: String,
    now: chrono::NaiveDateTime,
) -> NewQuarantined {
    NewQuarantined {
        received_at: now,
        source: l.source.to_string(),
        reason_code: code.to_owned(),
        reason,
        raw_line: text.to_owned(),
        line_hash: match &l.rejected {
            // Only the head of an oversize frame is kept: its reason (with the length)
            // keeps two frames with one head apart.
            Some(r) => repo::bytes_hash(&[&l.bytes[..], b"\0", r.reason.as_bytes()].concat()),
            None => repo::bytes_hash(&l.bytes),
        },
        raw_bytes: (!exact).then(|| l.bytes.clone()),
    }
}

/// A JSON record holding an escaped NUL (`\u0000`) decodes to text no PostgreSQL text column
/// can hold; it is quarantined whole (its own bytes are plain UTF-8).
const JSON_NUL: &[u8] = b"\\u0000";

fn parse_one(l: &RawLine, cfg: &ExtractConfig, now: chrono::NaiveDateTime) -> Parsed {
    let text = storable_text(&l.bytes);
    let exact = matches!(text, std::borrow::Cow::Borrowed(_));
    if let Some(reject) = &l.rejected {
        return Parsed::Quarantined(quarantine_row(
            l,
            &text,
            exact,
            reject.code,
            reject.reason.clone(),
            now,
        ));
    }
    let json = l.bytes.first() == Some(&b'{');
    let parsed = if json {
        if l.bytes.windows(JSON_NUL.len()).any(|w| w == JSON_NUL) {
            return Parsed::Quarantined(quarantine_row(
                l,
                &text,
                exact,
                "nul",
                "JSON record holds a NUL character (\\u0000), which text columns cannot store"
                    .into(),
                now,
            ));
        }
        parse_json_record(&text)
    } else {
        parse_line(&text)
    };
    let mut rec = match parsed {
        Ok(r) => r,
        Err(ParseError::Empty) => return Parsed::Empty,
        Err(e) => {
            return Parsed::Quarantined(quarantine_row(
                l,
                &text,
                exact,
                e.code(),
                e.to_string(),
                now,
            ))
        }
    };
    if rec.raw_line.is_empty() {
        rec.raw_line = text.into_owned();
    }
    if l.source_worker.is_some() {
        rec.source_worker.clone_from(&l.source_worker);
    }
    let x = extract(&rec, cfg);
    let raw_bytes = (!exact).then(|| l.bytes.clone());
    let mut p = PreparedRecord::new(rec, x, now, raw_bytes);
    // `parse_line` stores the (trimmed) text it parsed; the profiler parses that same text.
    p.profile_exact = !json;
    Parsed::Record(Box::new(p))
}

/// A batch after the pure, per-line part of intake (parse, extract, key), ready for
/// [`Pipeline::commit_parsed`].
pub struct ParsedBatch {
    parsed: Vec<Parsed>,
    /// Receive time of the batch (quarantine rows, records without a timestamp).
    now: chrono::NaiveDateTime,
}

impl ParsedBatch {
    /// Parse every line of a batch, in input order. Lines are independent, so a large batch
    /// is split over the machine's cores (the database work that follows is serial).
    pub fn parse(lines: &[RawLine], cfg: &ExtractConfig) -> Self {
        Self::parse_on(lines, cfg, crate::domain::par::default_threads())
    }

    /// [`ParsedBatch::parse`] on the calling thread only: a read-ahead that runs while the
    /// previous batch commits leaves the other core to the database.
    pub fn parse_serial(lines: &[RawLine], cfg: &ExtractConfig) -> Self {
        Self::parse_on(lines, cfg, 1)
    }

    fn parse_on(lines: &[RawLine], cfg: &ExtractConfig, threads: usize) -> Self {
        let now = now_utc();
        ParsedBatch {
            parsed: crate::domain::par::map_with(lines, threads, |l| parse_one(l, cfg, now)),
            now,
        }
    }
}

impl Pipeline {
    /// Build from settings; bad `trusted_proxies` tokens are logged and ignored.
    pub fn new(
        db: Db,
        registry: Option<RegistryHandle>,
        s: &IngestSettings,
        counters: Arc<IngestCounters>,
    ) -> Self {
        let (trusted, bad) = TrustedProxies::parse(&s.trusted_proxies.join(","));
        for b in bad {
            tracing::warn!(token = %b, "DECNET_TRUSTED_PROXIES: ignoring unparsable entry");
        }
        Pipeline {
            db,
            registry,
            extract: ExtractConfig {
                trusted_proxies: trusted,
            },
            filter: CollectorFilter::from_lists(&s.drop_apps, &s.rl_event_types, s.rl_window_s),
            counters,
            // A pass at start-up folds whatever an earlier process committed but did not fold.
            profile_dirty: true,
            profile_interval: Duration::from_millis(s.profile_interval_ms),
            last_profile: None,
            last_profile_took: Duration::ZERO,
            profile_retry_at: None,
            tail_identity: None,
            shutdown_grace_s: crate::config::Settings::default().workers.shutdown_grace_s,
            fold: None,
            fold_hints: true,
        }
    }

    /// The fold hint once the batch being folded is in (`None`: no hint, or its fold was lost
    /// or outgrew the bound; the next pass then reads the rows).
    async fn take_fold(&mut self) -> Option<repo::FoldHint> {
        match self.fold.take()? {
            Fold::Ready(h) => Some(h),
            Fold::Folding(job) => job.await.ok().flatten(),
        }
    }

    /// Whether committed batches are folded for the next profiler pass ([`repo::FoldHint`];
    /// on by default). Off, every pass reads and parses the stored rows.
    pub fn set_fold_hints(&mut self, on: bool) {
        self.fold_hints = on;
        if !on {
            self.fold = None;
        }
    }

    /// The identity of the tailed file to store beside the next positions.
    pub fn set_tail_identity(&mut self, identity: Option<Map<String, Value>>) {
        self.tail_identity = identity;
    }

    /// Shared counters.
    pub fn counters(&self) -> &Arc<IngestCounters> {
        &self.counters
    }

    /// The serial part of a batch after [`ParsedBatch::parse`]: collector filter (tentative
    /// admissions, kept only if the batch commits) and the commit input.
    fn prepare(&self, parsed: ParsedBatch) -> (CommitInput, PendingAdmissions, usize) {
        let ParsedBatch { parsed, now } = parsed;
        let mut input = CommitInput::default();
        let mut pending = PendingAdmissions::default();
        let mut filtered = 0;
        for p in parsed {
            let r = match p {
                Parsed::Empty => continue,
                Parsed::Quarantined(q) => {
                    tracing::debug!(reason = %q.reason, head = %q.raw_line.chars().take(80).collect::<String>(), "ingest: unparsable line quarantined");
                    input.quarantine.push(q);
                    continue;
                }
                Parsed::Record(r) => r,
            };
            let rec = &r.record;
            let t = rec.timestamp.unwrap_or(now).and_utc().timestamp_micros() as f64 / 1e6;
            if self.filter.admit_pending(&mut pending, rec, t) != Admission::Accept {
                filtered += 1;
                continue;
            }
            match &r.extraction.credential {
                Some(Err(e)) => {
                    tracing::warn!(decky = %rec.decky, service = %rec.service, error = %e, "ingest: credential dropped");
                }
                Some(Ok(d)) => {
                    for col in &d.truncated {
                        tracing::warn!(column = col, decky = %rec.decky, "ingest: credential column truncated");
                    }
                }
                None => {}
            }
            input.records.push(*r);
        }
        (input, pending, filtered)
    }

    /// Parse and commit `lines` as one batch (plus `position`, stored in the same
    /// transaction), then publish. On error nothing is stored and the filter is unchanged,
    /// so the caller may retry the same lines.
    pub async fn commit(
        &mut self,
        lines: &[RawLine],
        position: Option<u64>,
    ) -> Result<CommitOutcome, DbError> {
        let parsed = ParsedBatch::parse(lines, &self.extract);
        self.commit_parsed(lines.len(), parsed, position).await
    }

    /// The extraction settings (for [`ParsedBatch::parse`] off the pipeline's task).
    pub fn extract_config(&self) -> &ExtractConfig {
        &self.extract
    }

    /// [`Pipeline::commit`] of a batch of `line_count` lines already parsed (possibly on
    /// another thread while the previous batch committed).
    pub async fn commit_parsed(
        &mut self,
        line_count: usize,
        parsed: ParsedBatch,
        position: Option<u64>,
    ) -> Result<CommitOutcome, DbError> {
        let started = std::time::Instant::now();
        let (mut input, pending, filtered) = self.prepare(parsed);
        let prepared = started.elapsed();
        input.position = position.map(|p| {
            let mut v = self.tail_identity.clone().unwrap_or_default();
            v.insert("position".into(), json!(p));
            (POSITION_KEY.to_owned(), Value::Object(v))
        });
        let input = Arc::new(input);
        let out = repo::commit_batch(&self.db, Arc::clone(&input)).await?;
        tracing::debug!(
            lines = line_count,
            prepare_ms = prepared.as_millis() as u64,
            commit_ms = (started.elapsed() - prepared).as_millis() as u64,
            "ingest: batch committed"
        );
        let mut laps = crate::metrics::Laps::new("after_commit");
        self.filter.commit(pending);
        // Folded on a blocking thread while the next batch commits.
        if let Some(mut h) = self.take_fold().await {
            let (input, inserted) = (Arc::clone(&input), out.inserted.clone());
            self.fold = Some(Fold::Folding(tokio::task::spawn_blocking(move || {
                h.add(&input, &inserted);
                // Too large: the pass reads the rows instead, and a hint starts after it.
                (h.rows() <= repo::FOLD_HINT_MAX_ROWS).then_some(h)
            })));
        }
        laps.lap("fold");
        crate::metrics::ingest_lines_read(line_count);
        crate::metrics::ingest_batch(
            out.logs_inserted as u64,
            out.quarantined as u64,
            out.duplicates as u64,
            started.elapsed() - prepared,
        );
        let c = &self.counters;
        IngestCounters::add(&c.lines, line_count);
        IngestCounters::add(&c.logs_inserted, out.logs_inserted);
        IngestCounters::add(&c.duplicates, out.duplicates);
        IngestCounters::add(&c.quarantined, out.quarantined);
        IngestCounters::add(&c.parse_errors, input.quarantine.len());
        IngestCounters::add(&c.filtered, filtered);
        IngestCounters::add(&c.bounties, out.bounties_inserted);
        IngestCounters::add(&c.credentials, out.captured.len());
        IngestCounters::add(&c.batches, 1);
        laps.lap("counters");
        // The batch's input goes with its events and is dropped on the registry's thread.
        self.publish(input, &out, position);
        laps.lap("publish");
        if out.logs_inserted > 0 || out.bounties_inserted > 0 || out.new_credentials > 0 {
            self.profile_dirty = true;
        }
        self.profile_if_due(false).await;
        laps.lap("profile");
        drop(laps);
        Ok(out)
    }

    /// The batch's events (`system.log` per stored line, mail, credentials,
    /// `batch.committed`), built and published on the registry's thread: the writer's loop
    /// only hands over the input and what the commit stored.
    fn publish(&self, input: Arc<CommitInput>, out: &CommitOutcome, position: Option<u64>) {
        let Some(reg) = &self.registry else {
            return;
        };
        let out = out.clone();
        reg.publish_all_with(move || batch_events(&input, &out, position));
    }

    /// Whether a profiler pass should run now: something was committed since the last one
    /// and either the input went idle or `profile_interval_ms` has passed — and, while lines
    /// keep arriving, at least [`BACKLOG_PASS_SPACING`] times the last pass's duration (passes
    /// take at most about a tenth of a backlog's time); never sooner than
    /// [`PROFILE_RETRY_MIN`] after a failed pass.
    pub fn profile_due(&self, idle: bool) -> bool {
        if self
            .profile_retry_at
            .is_some_and(|t| std::time::Instant::now() < t)
        {
            return false;
        }
        self.profile_dirty
            && (idle
                || self.profile_interval.is_zero()
                || self.last_profile.is_none_or(|t| {
                    t.elapsed()
                        >= self
                            .profile_interval
                            .max(self.last_profile_took * BACKLOG_PASS_SPACING)
                }))
    }

    /// One profiler pass (committed rows → `attackers`), then `attacker.observed` for rows it
    /// created and `attacker.scored` for every row it wrote, both carrying the uuid.
    pub async fn profile_pass(&mut self) -> Result<ProfileOutcome, DbError> {
        let started = std::time::Instant::now();
        // Taken before the pass: a pass that fails or is dropped leaves no hint, and the next
        // one reads the rows.
        let hint = self.take_fold().await;
        let out = repo::profile_pass(&self.db, hint).await?;
        self.fold = self
            .fold_hints
            .then(|| Fold::Ready(repo::FoldHint::after(out.cursor.log_id)));
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            scored = out.scored.len(),
            hinted = out.hinted,
            "ingest: profiler pass"
        );
        self.profile_dirty = false;
        self.profile_retry_at = None;
        self.last_profile = Some(std::time::Instant::now());
        self.last_profile_took = started.elapsed();
        IngestCounters::add(&self.counters.profile_passes, 1);
        IngestCounters::add(&self.counters.attackers_created, out.observed.len());
        if let Some(reg) = &self.registry {
            // Built and published on the registry's thread (one event per attacker row).
            let (observed, scored) = (out.observed.clone(), out.scored.clone());
            reg.publish_all_with(move || {
                let mut evs = Vec::with_capacity(observed.len() + scored.len());
                for (o, uuid) in observed {
                    evs.push(Event::AttackerObserved(AttackerObserved {
                        attacker_ip: o.attacker_ip,
                        decky: o.decky,
                        service: o.service,
                        event_type: o.event_type,
                        first_seen: o.first_seen,
                        attacker_uuid: Some(uuid),
                    }));
                }
                let u = |v: i64| u64::try_from(v).unwrap_or(0);
                for (s, uuid) in scored {
                    evs.push(Event::AttackerScored(AttackerScored {
                        attacker_ip: s.attacker_ip,
                        attacker_uuid: Some(uuid),
                        event_count: u(s.event_count),
                        service_count: u(s.service_count),
                        decky_count: u(s.decky_count),
                        bounty_count: u(s.bounty_count),
                        credential_count: u(s.credential_count),
                        is_traversal: s.is_traversal,
                    }));
                }
                evs
            });
        }
        Ok(out)
    }

    /// A profiler pass when one is due; a failure is logged and counted (the cursor did not
    /// move, so the next pass folds the same rows).
    pub async fn profile_if_due(&mut self, idle: bool) {
        if self.profile_due(idle) {
            if let Err(e) = self.profile_pass().await {
                self.profile_retry_at = Some(std::time::Instant::now() + PROFILE_RETRY_MIN);
                self.counters.db_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "profiler pass failed; the next one retries");
            }
        }
    }

    /// One credential-reuse pass; publishes `credential.reuse.detected` per new/grown finding.
    pub async fn reuse_pass(&self, min_targets: usize) -> Result<Vec<Finding>, DbError> {
        let started = std::time::Instant::now();
        let found = repo::reuse_pass(&self.db, min_targets).await?;
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            findings = found.len(),
            "ingest: credential-reuse pass"
        );
        IngestCounters::add(&self.counters.reuse_findings, found.len());
        if let Some(reg) = &self.registry {
            for f in &found {
                reg.publish(Event::CredentialReuseDetected(CredentialReuseDetected {
                    id: f.id.clone(),
                    secret_kind: f.secret_kind.clone(),
                    target_count: u64::try_from(f.target_count).unwrap_or(0),
                    attacker_uuids: f.attacker_uuids.clone(),
                    attacker_ips: f.attacker_ips.clone(),
                    deckies: f.deckies.clone(),
                    services: f.services.clone(),
                }));
            }
        }
        Ok(found)
    }
}

/// The events of a committed batch, in publishing order.
fn batch_events(input: &CommitInput, out: &CommitOutcome, position: Option<u64>) -> Vec<Event> {
    // Handed to the registry in one message, in this order.
    let mut evs = Vec::with_capacity(out.inserted.len() + out.captured.len() + 1);
    // `system.log` per stored line (spec §9).
    for r in out.inserted.iter().filter_map(|&i| input.records.get(i)) {
        let rec = &r.record;
        evs.push(Event::Log(LogLine {
            decky: rec.decky.clone(),
            service: rec.service.clone(),
            event_type: rec.event_type.clone(),
            attacker_ip: rec.has_attacker_ip().then(|| rec.attacker_ip.clone()),
            timestamp: iso(r.log.timestamp),
        }));
    }
    for m in &out.mail {
        let Some(r) = input.records.get(m.record) else {
            continue;
        };
        let (rec, f) = (&r.record, r.record.fields());
        let summary = mail::summarize(f);
        let stored_as = summary.stored_as.clone();
        if let Some(uuid) = &m.attacker_uuid {
            evs.push(Event::EmailReceived(EmailReceived {
                source_id: m.artifact_id,
                attacker_uuid: uuid.clone(),
                attacker_ip: rec.attacker_ip.clone(),
                decky_id: rec.decky.clone(),
                service: rec.service.clone(),
                mail: summary,
            }));
        }
        if r.extraction.smtp_probe_pending {
            let text = |k: &str| f.get_nonempty(k).map(str::to_owned);
            evs.push(Event::SmtpProbePending(SmtpProbePending {
                decky: rec.decky.clone(),
                attacker_ip: rec.attacker_ip.clone(),
                stored_as,
                mail_from: text("mail_from"),
                rcpt_to: text("rcpt_to"),
            }));
        }
    }
    for cap in &out.captured {
        evs.push(Event::CredentialCaptured(CredentialCaptured {
            secret_sha256: cap.secret_sha256.clone(),
            secret_kind: cap.secret_kind.clone(),
            attacker_ip: cap.attacker_ip.clone(),
            decky: cap.decky.clone(),
            service: cap.service.clone(),
        }));
    }
    if out.logs_inserted > 0 {
        evs.push(Event::BatchCommitted(BatchCommitted {
            flushed: out.logs_inserted as u64,
            position: position.unwrap_or(0),
        }));
    }
    evs
}

/// Tail state of the ingest file.
#[derive(Debug, Clone)]
pub struct FileTail {
    path: PathBuf,
    source: Arc<str>,
    /// Committed byte offset.
    pub position: u64,
    inode: Option<u64>,
    /// Identity stored with the offset, checked on the first read after a start.
    stored: Option<FileIdentity>,
    /// Identity of the file being read (`inode` + head fingerprint).
    identity: Option<FileIdentity>,
    /// A rotated file being finished (found by its inode) before the new one is read from 0.
    old_path: Option<PathBuf>,
    /// Longest line read as a line (`max_frame_bytes`); a longer one becomes one quarantine
    /// row (reason `framing`) keeping its first `max_line` bytes.
    pub max_line: usize,
}

#[cfg(unix)]
fn inode_of(m: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(m.ino())
}

#[cfg(not(unix))]
fn inode_of(_m: &std::fs::Metadata) -> Option<u64> {
    None
}

/// Bytes of a file's head fingerprinted with its inode.
const HEAD_BYTES: usize = 1024;

/// Which file an offset belongs to: its inode and a sha256 of its first `head_len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    inode: u64,
    head_len: usize,
    head_sha: String,
}

impl FileIdentity {
    fn of(f: &mut std::fs::File, inode: u64) -> std::io::Result<Self> {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        f.seek(SeekFrom::Start(0))?;
        f.take(HEAD_BYTES as u64).read_to_end(&mut head)?;
        Ok(FileIdentity {
            inode,
            head_len: head.len(),
            head_sha: repo::bytes_hash(&head),
        })
    }

    /// Whether `f` (of inode `inode`) is the file this identity was taken from.
    fn matches(&self, f: &mut std::fs::File, inode: Option<u64>) -> std::io::Result<bool> {
        if inode != Some(self.inode) {
            return Ok(false);
        }
        let mut head = Vec::with_capacity(self.head_len);
        f.seek(SeekFrom::Start(0))?;
        f.take(self.head_len as u64).read_to_end(&mut head)?;
        Ok(head.len() == self.head_len && repo::bytes_hash(&head) == self.head_sha)
    }

    fn from_state(v: &Value) -> Option<Self> {
        Some(FileIdentity {
            inode: v.get("inode")?.as_u64()?,
            head_len: usize::try_from(v.get("head_len")?.as_u64()?).ok()?,
            head_sha: v.get("head_sha")?.as_str()?.to_owned(),
        })
    }
}

/// The file in `dir` (other than `skip`) whose inode is `inode`.
#[cfg(unix)]
fn find_by_inode(dir: &Path, inode: u64, skip: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p != skip)
        .find(|p| std::fs::metadata(p).ok().as_ref().and_then(inode_of) == Some(inode))
}

#[cfg(not(unix))]
fn find_by_inode(_dir: &Path, _inode: u64, _skip: &Path) -> Option<PathBuf> {
    None
}

/// What [`FileTail::read`] found.
#[derive(Debug)]
pub enum TailRead {
    /// Complete lines and the offset just after the last one.
    Lines(Vec<RawLine>, u64),
    /// The file shrank or was replaced: the offset went back to 0 (persist it).
    Reset,
    /// Nothing new (or the file is missing).
    Idle,
}

impl FileTail {
    /// Tail `path` from the offset stored in the `state` table.
    pub async fn load(db: &Db, path: &Path) -> Result<Self, DbError> {
        let stored = state::get(db, POSITION_KEY).await?;
        let position = stored
            .as_ref()
            .and_then(|v| v.get("position"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(FileTail {
            path: path.to_path_buf(),
            source: Arc::from(format!("file:{}", path.display())),
            position,
            inode: None,
            stored: stored.as_ref().and_then(FileIdentity::from_state),
            identity: None,
            old_path: None,
            max_line: IngestSettings::default().max_frame_bytes,
        })
    }

    /// The identity of the file being read, as stored beside its offset.
    pub fn identity(&self) -> Option<Map<String, Value>> {
        let id = self.identity.as_ref()?;
        let mut m = Map::new();
        m.insert("inode".into(), json!(id.inode));
        m.insert("head_len".into(), json!(id.head_len));
        m.insert("head_sha".into(), json!(id.head_sha));
        Some(m)
    }

    /// Back to offset 0 of the live path.
    fn reset(&mut self, why: &str) -> TailRead {
        tracing::info!(path = %self.path.display(), old = self.position, why, "ingest file: reading from 0");
        self.position = 0;
        self.identity = None;
        self.old_path = None;
        self.inode = None;
        TailRead::Reset
    }

    /// The file was replaced (rotation): finish the old one when it is still in the same
    /// directory (found by inode) with unread bytes, else start the new one from 0.
    fn rotated(&mut self, old_inode: u64) -> TailRead {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match find_by_inode(dir, old_inode, &self.path) {
            Some(old) if std::fs::metadata(&old).is_ok_and(|m| m.len() > self.position) => {
                tracing::info!(old = %old.display(), position = self.position, "ingest file rotated; finishing the old file first");
                self.old_path = Some(old);
                TailRead::Idle
            }
            _ => self.reset("rotated"),
        }
    }

    /// Read up to `max_lines` complete lines after the committed offset.
    pub fn read(&mut self, max_lines: usize) -> Result<TailRead, std::io::Error> {
        let path = self.old_path.clone().unwrap_or_else(|| self.path.clone());
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.old_path.is_some() {
                    return Ok(self.reset("rotated file gone"));
                }
                return Ok(TailRead::Idle);
            }
            Err(e) => return Err(e),
        };
        let meta = f.metadata()?;
        let ino = inode_of(&meta);
        if self.old_path.is_none() {
            // Rotated or replaced while down: the stored identity is not this file's.
            if let Some(st) = self.stored.take() {
                if !st.matches(&mut f, ino)? {
                    self.identity = Some(st.clone());
                    return Ok(self.rotated(st.inode));
                }
                self.identity = Some(st);
            }
            if let (Some(was), Some(now)) = (self.identity.as_ref().map(|i| i.inode), ino) {
                if was != now && self.position > 0 {
                    return Ok(self.rotated(was));
                }
            }
            let rotated = matches!((self.inode, ino), (Some(a), Some(b)) if a != b);
            self.inode = ino;
            if meta.len() < self.position || (rotated && self.position > 0) {
                return Ok(self.reset("truncated"));
            }
            if let Some(i) = ino {
                if self
                    .identity
                    .as_ref()
                    .is_none_or(|id| id.head_len < HEAD_BYTES || id.inode != i)
                {
                    self.identity = Some(FileIdentity::of(&mut f, i)?);
                }
            }
        }
        crate::metrics::ingest_tail_lag(meta.len().saturating_sub(self.position));
        if meta.len() <= self.position {
            if self.old_path.is_some() {
                return Ok(self.reset("rotated file finished"));
            }
            return Ok(TailRead::Idle);
        }
        f.seek(SeekFrom::Start(self.position))?;
        let want = usize::try_from(meta.len() - self.position)
            .unwrap_or(READ_CHUNK)
            .min(READ_CHUNK);
        let mut buf = Vec::with_capacity(want);
        (&mut f).take(want as u64).read_to_end(&mut buf)?;
        let mut lines = Vec::new();
        let mut consumed = 0usize;
        let max = self.max_line.max(1);
        while lines.len() < max_lines {
            let Some(nl) = buf[consumed..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let mut line = &buf[consumed..consumed + nl];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            lines.push(self.line_or_oversize(line, line.len()));
            consumed += nl + 1;
        }
        if lines.len() < max_lines && buf.len() - consumed > max {
            // A line longer than the limit whose end is past the read window: find its end
            // in the file and quarantine it once, keeping its head. Still unterminated: wait.
            let start = self.position + consumed as u64;
            if let Some(end) = find_newline(&mut f, start + (buf.len() - consumed) as u64)? {
                let len = usize::try_from(end - start).unwrap_or(usize::MAX);
                lines.push(self.line_or_oversize(&buf[consumed..], len));
                return Ok(TailRead::Lines(lines, end + 1));
            }
        }
        if lines.is_empty() {
            return Ok(TailRead::Idle);
        }
        Ok(TailRead::Lines(lines, self.position + consumed as u64))
    }
}

impl FileTail {
    /// `line` (of `len` bytes in the file) as a line, or its head as a rejected one when it
    /// is over the limit.
    fn line_or_oversize(&self, line: &[u8], len: usize) -> RawLine {
        if len <= self.max_line.max(1) {
            return RawLine::new(line.to_vec(), self.source.clone(), None);
        }
        let head = line[..self.max_line.max(1).min(line.len())].to_vec();
        let why = FrameError::Oversize {
            len,
            max: self.max_line,
        };
        RawLine::rejected(head, self.source.clone(), None, &why)
    }
}

/// Offset of the first newline at or after `from`, reading forward in chunks.
fn find_newline(f: &mut std::fs::File, from: u64) -> std::io::Result<Option<u64>> {
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            return Ok(Some(at + i as u64));
        }
        at += n as u64;
    }
}

/// Summary of [`ingest_files`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestSummary {
    /// Files read.
    pub files: usize,
    /// Lines read.
    pub lines: u64,
    /// New log rows.
    pub logs_inserted: u64,
    /// Lines already stored.
    pub duplicates: u64,
    /// Lines quarantined (new rows).
    pub quarantined: u64,
    /// Bounty rows added.
    pub bounties: u64,
    /// Credential attempts.
    pub credentials: u64,
    /// Reuse findings published.
    pub reuse_findings: u64,
}

/// A replay file being read in batches.
struct ReplayReader {
    reader: std::io::BufReader<std::fs::File>,
    source: Arc<str>,
    batch: usize,
    eof: bool,
}

impl ReplayReader {
    /// Up to `batch` lines (terminators stripped) and the bytes they took.
    fn read_batch(&mut self) -> std::io::Result<(Vec<RawLine>, u64)> {
        let mut lines = Vec::with_capacity(self.batch);
        let mut bytes = 0u64;
        while lines.len() < self.batch {
            let mut buf = Vec::new();
            let n = std::io::BufRead::read_until(&mut self.reader, b'\n', &mut buf)?;
            if n == 0 {
                self.eof = true;
                break;
            }
            bytes += n as u64;
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            lines.push(RawLine::new(buf, self.source.clone(), None));
        }
        Ok((lines, bytes))
    }
}

/// What [`read_ahead`] hands back: the reader, and the batch (line count, parsed lines,
/// bytes read) or the read error.
struct ReadAhead {
    reader: ReplayReader,
    batch: std::io::Result<(usize, ParsedBatch, u64)>,
}

/// Read and parse the next batch on a blocking thread.
fn read_ahead(
    mut reader: ReplayReader,
    cfg: Arc<ExtractConfig>,
) -> tokio::task::JoinHandle<ReadAhead> {
    tokio::task::spawn_blocking(move || {
        let batch = reader
            .read_batch()
            .map(|(lines, bytes)| (lines.len(), ParsedBatch::parse_serial(&lines, &cfg), bytes));
        ReadAhead { reader, batch }
    })
}

/// Smallest batch of `decnetd ingest` (the daemon keeps `DECNET_BATCH_SIZE` for latency).
pub const REPLAY_MIN_BATCH: usize = 10_000;

/// Shortest profiler interval of `decnetd ingest`: a replay folds every attacker again on each
/// pass, so it folds at most every 10 s (and once at the end) instead of every
/// `DECNET_PROFILE_INTERVAL_MS`.
pub const REPLAY_MIN_PROFILE_INTERVAL_MS: u64 = 10_000;

/// Replay files into the database (`decnetd ingest FILE…`): same pipeline as the daemon,
/// batches of `settings.batch_size` (at least [`REPLAY_MIN_BATCH`]), deduplicated so a second run adds
/// nothing. A progress bar is drawn when `progress` is set and stderr is a terminal.
pub async fn ingest_files(
    db: &Db,
    registry: Option<RegistryHandle>,
    settings: &IngestSettings,
    files: &[PathBuf],
    progress: bool,
) -> Result<IngestSummary, IngestError> {
    use std::io::IsTerminal;
    let counters = Arc::new(IngestCounters::default());
    let replay = IngestSettings {
        profile_interval_ms: settings
            .profile_interval_ms
            .max(REPLAY_MIN_PROFILE_INTERVAL_MS),
        ..settings.clone()
    };
    let mut pipeline = Pipeline::new(db.clone(), registry, &replay, counters.clone());
    // Fold what an earlier process committed but did not fold before the first batch, so that
    // the replay's own rows wait for the interval (or the end) instead of being folded after
    // its first batch.
    if pipeline.profile_due(true) {
        pipeline.profile_pass().await?;
    }
    // A replay has no reader waiting on it: large transactions (at least
    // `REPLAY_MIN_BATCH` lines) amortise the index pages every commit rewrites.
    let batch = settings.batch_size.max(REPLAY_MIN_BATCH);
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = (progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            b.set_style(style);
        }
        b
    });
    let mut summary = IngestSummary::default();
    let cfg = Arc::new(pipeline.extract_config().clone());
    for path in files {
        let io = |source| IngestError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let source: Arc<str> = Arc::from(format!("cli:{}", path.display()));
        // Two stages: while one batch commits (the database thread), the next one is read
        // and parsed on another thread. The collector filter stays in commit order.
        let mut reader = ReplayReader {
            reader: std::io::BufReader::with_capacity(1 << 20, file),
            source,
            batch,
            eof: false,
        };
        let mut next = Some(read_ahead(reader, Arc::clone(&cfg)));
        while let Some(task) = next.take() {
            let read = task.await.map_err(|e| io(std::io::Error::other(e)))?;
            reader = read.reader;
            let (lines, parsed, bytes) = read.batch.map_err(io)?;
            if let Some(b) = &bar {
                b.inc(bytes);
            }
            if !reader.eof {
                next = Some(read_ahead(reader, Arc::clone(&cfg)));
            }
            if lines == 0 {
                continue;
            }
            let out = pipeline.commit_parsed(lines, parsed, None).await?;
            summary.lines += lines as u64;
            summary.logs_inserted += out.logs_inserted as u64;
            summary.duplicates += out.duplicates as u64;
            summary.quarantined += out.quarantined as u64;
            summary.bounties += out.bounties_inserted as u64;
            summary.credentials += out.captured.len() as u64;
        }
        summary.files += 1;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if pipeline.profile_due(true) {
        pipeline.profile_pass().await?;
    }
    let found = pipeline.reuse_pass(settings.reuse_min_targets).await?;
    summary.reuse_findings = found.len() as u64;
    Ok(summary)
}

/// The listeners and the lines they delivered, handed from one ingester generation to the
/// next when a run ends in error (a requested stop drains and drops them).
pub struct LiveIntake {
    listeners: Option<listener::Listeners>,
    rx: listener::LineReceiver,
    /// Received but not yet committed.
    pending: Vec<RawLine>,
    /// A full batch taken from `pending` and being parsed when a backlog slice ended
    /// ([`flush_backlog`]): older than every line in `pending`, committed first.
    parsing: Option<ParseJob>,
}

impl LiveIntake {
    /// Lines received and not committed, nor being committed: `pending` or `parsing`.
    fn holds_lines(&self) -> bool {
        !self.pending.is_empty() || self.parsing.is_some()
    }

    /// When the loop should flush: at once for a batch already parsed, `max_wait` after now
    /// for pending lines, never when nothing waits.
    fn flush_deadline(&self, max_wait: Duration) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        if self.parsing.is_some() {
            Some(now)
        } else {
            (!self.pending.is_empty()).then(|| now + max_wait)
        }
    }

    /// Put the lines of a batch being parsed back at the front of `pending` (before a stop
    /// drains them, or before a successor takes them over).
    async fn unparse(&mut self) {
        if let Some(job) = self.parsing.take() {
            match job.await {
                Ok((mut lines, _)) => {
                    lines.append(&mut self.pending);
                    self.pending = lines;
                }
                Err(e) => {
                    tracing::error!(error = %e, "ingester: a parse task was lost with its lines")
                }
            }
        }
    }
}

/// What outlives one ingester actor (one per daemon, captured by the worker factory): the
/// counters, and the [`LiveIntake`] of a run that failed, so its successor neither reopens
/// the sockets nor loses the lines already read from them.
#[derive(Clone, Default)]
pub struct IntakeHub {
    live: Arc<std::sync::Mutex<Option<LiveIntake>>>,
    counters: Arc<IngestCounters>,
}

impl IntakeHub {
    fn take(&self) -> Option<LiveIntake> {
        self.live.lock().ok().and_then(|mut g| g.take())
    }

    fn put(&self, l: LiveIntake) {
        if let Ok(mut g) = self.live.lock() {
            *g = Some(l);
        }
    }
}

/// The ingester actor. It owns one async loop (file tail, listener lines, reuse passes);
/// `Shutdown` asks the loop to drain the listeners, commit everything and end.
pub struct Ingester {
    deps: Deps,
    beat: Beat,
    exit: ExitGuard,
    counters: Arc<IngestCounters>,
    stop_tx: Option<watch::Sender<bool>>,
    hub: IntakeHub,
}

impl Ingester {
    pub fn new(deps: Deps, hub: IntakeHub, exit: ExitGuard) -> Self {
        let beat = deps.beat("ingester");
        Ingester {
            deps,
            beat,
            exit,
            counters: hub.counters.clone(),
            stop_tx: None,
            hub,
        }
    }

    /// The previous run's listeners and lines, or fresh ones.
    fn live_intake(&self, s: &IngestSettings) -> Result<LiveIntake, IngestError> {
        if let Some(live) = self.hub.take() {
            tracing::info!(
                pending = live.pending.len(),
                "ingester: resuming the previous run's listeners and lines"
            );
            return Ok(live);
        }
        let (tx, rx) = listener::line_channel(
            (s.batch_size.max(1) * 20).max(s.batch_max_size),
            s.channel_max_bytes,
            s.max_frame_bytes,
        );
        let listeners = listener::start_all(s, tx, self.counters.clone())?;
        Ok(LiveIntake {
            listeners,
            rx,
            pending: Vec::new(),
            parsing: None,
        })
    }
}

impl Beating for Ingester {
    fn beat(&self) -> &Beat {
        &self.beat
    }
    fn health_extra(&self) -> Map<String, Value> {
        self.counters.to_map()
    }
}

impl Actor for Ingester {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        start_beating(ctx, self);
        let s = self.deps.settings.ingest.clone();
        let live = match self.live_intake(&s) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "ingester: listener failed to start");
                self.exit.fail(e.to_string());
                ctx.stop();
                return;
            }
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        self.stop_tx = Some(stop_tx);
        let mut pipeline = Pipeline::new(
            self.deps.db.clone(),
            Some(self.deps.registry.clone()),
            &s,
            self.counters.clone(),
        );
        pipeline.shutdown_grace_s = self.deps.settings.workers.shutdown_grace_s;
        let db = self.deps.db.clone();
        ctx.spawn(
            run_loop(db, pipeline, s, live, stop_rx)
                .into_actor(self)
                .map(|(res, live), act, ctx| {
                    if let Err(e) = res {
                        tracing::error!(error = %e, "ingester loop failed");
                        act.exit.fail(e.to_string());
                        // The successor resumes these sockets and lines.
                        act.hub.put(live);
                    }
                    ctx.stop();
                }),
        );
    }
}

impl Handler<Shutdown> for Ingester {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        match self.stop_tx.take() {
            // The loop flushes its pending batch, then its completion stops the actor.
            Some(tx) if tx.send(true).is_ok() => {}
            _ => ctx.stop(),
        }
    }
}

async fn commit_with_retry(
    pipeline: &mut Pipeline,
    lines: &[RawLine],
    position: Option<u64>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<CommitOutcome>, IngestError> {
    let mut failures = 0u32;
    loop {
        match pipeline.commit(lines, position).await {
            Ok(out) => return Ok(Some(out)),
            Err(e) => {
                failures += 1;
                pipeline.counters.db_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, attempt = failures, "ingest batch failed; will retry without advancing");
                if failures >= MAX_CONSECUTIVE_FAILURES {
                    return Err(e.into());
                }
                if *stop.borrow() {
                    return Ok(None);
                }
                let delay = Duration::from_millis(250 * 2u64.pow(failures.min(5)));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The drain window of a stop: the supervisor's shutdown grace less time to commit.
pub fn drain_window(shutdown_grace_s: f64) -> Duration {
    Duration::from_secs_f64((shutdown_grace_s - 2.0).max(1.0))
}

/// The ingester loop; hands its [`LiveIntake`] back (with the lines not committed) so that
/// a failed run's successor resumes it.
async fn run_loop(
    db: Db,
    pipeline: Pipeline,
    s: IngestSettings,
    mut live: LiveIntake,
    stop: watch::Receiver<bool>,
) -> (Result<(), IngestError>, LiveIntake) {
    let res = run(db, pipeline, s, &mut live, stop).await;
    // A successor takes over plain lines, not a task of this generation's runtime.
    live.unparse().await;
    (res, live)
}

/// A tailed batch being parsed off the loop's thread, with where it ends in the file and
/// the file's identity when it was read (both stored by its commit).
struct TailBatch {
    end: u64,
    identity: Option<Map<String, Value>>,
    parse: tokio::task::JoinHandle<(Vec<RawLine>, ParsedBatch)>,
}

/// Commit a tailed batch; a failed first attempt falls back to [`commit_with_retry`] on the
/// same lines (`Ok(None)` when the stop made it give up).
async fn commit_tail_batch(
    pipeline: &mut Pipeline,
    b: TailBatch,
    stop: &watch::Receiver<bool>,
) -> Result<Option<CommitOutcome>, IngestError> {
    let (lines, parsed) = b
        .parse
        .await
        .map_err(|e| IngestError::Parse(e.to_string()))?;
    pipeline.set_tail_identity(b.identity);
    commit_parsed_or_retry(pipeline, &lines, parsed, Some(b.end), stop).await
}

/// Commit the pending lines (`Ok(false)` when the stop made the commit give up).
async fn flush(
    pipeline: &mut Pipeline,
    pending: &mut Vec<RawLine>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<CommitOutcome>, IngestError> {
    if pending.is_empty() {
        return Ok(None);
    }
    let out = commit_with_retry(pipeline, pending, None, stop).await?;
    if out.is_some() {
        // Committed: RELP senders may forget these messages now.
        for a in pending.iter().filter_map(|l| l.ack.as_ref()) {
            a.send();
        }
        pending.clear();
    }
    Ok(out)
}

/// Listener lines being parsed off the loop's thread. The lines come back even if parsing
/// panicked (then with the panic's message), so that they are never lost with the task.
type ParseJob = tokio::task::JoinHandle<(Vec<RawLine>, Result<ParsedBatch, String>)>;

fn parse_off_thread(lines: Vec<RawLine>, cfg: &Arc<ExtractConfig>) -> ParseJob {
    let cfg = Arc::clone(cfg);
    tokio::task::spawn_blocking(move || {
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ParsedBatch::parse_serial(&lines, &cfg)
        }))
        .map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "parse panicked".to_owned())
        });
        (lines, parsed)
    })
}

/// Commit a parsed batch; a failed first attempt falls back to [`commit_with_retry`] on the
/// same lines (`Ok(None)` when the stop made it give up).
async fn commit_parsed_or_retry(
    pipeline: &mut Pipeline,
    lines: &[RawLine],
    parsed: ParsedBatch,
    position: Option<u64>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<CommitOutcome>, IngestError> {
    match pipeline.commit_parsed(lines.len(), parsed, position).await {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            pipeline.counters.db_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "ingest batch failed; will retry without advancing");
            commit_with_retry(pipeline, lines, position, stop).await
        }
    }
}

/// Commit the batch `live.parsing` holds, if any, and the listener lines in `live.pending`,
/// then, batch by batch, every full batch (at least `batch` lines, at most `max_batch`) the
/// queue holds by then: while one batch commits, the next is parsed on another thread. When
/// `slice` ends (`backlog_slice_ms`), the batch being parsed is left in `live.parsing` for the next
/// call, so that a slice does not begin by waiting for a parse. A committed batch's RELP
/// senders are acknowledged. Lines not committed — a stop made the commit give up, it failed
/// for good, or parsing panicked — go back to the front of `live.pending`, in order, so that
/// the drain or the successor commits them.
/// Whether a commit captured credentials (the reuse pass is then due).
async fn flush_backlog(
    pipeline: &mut Pipeline,
    live: &mut LiveIntake,
    batch: usize,
    max_batch: usize,
    slice: Duration,
    cfg: &Arc<ExtractConfig>,
    stop: &watch::Receiver<bool>,
) -> Result<bool, IngestError> {
    if !live.holds_lines() {
        return Ok(false);
    }
    let mut captured = false;
    let started = tokio::time::Instant::now();
    let mut ready = match live.parsing.take() {
        Some(job) => job,
        None => parse_off_thread(std::mem::take(&mut live.pending), cfg),
    };
    loop {
        let mut laps = crate::metrics::Laps::new("backlog_batch");
        let drained = live.rx.drain_ready(&mut live.pending, max_batch);
        laps.lap("drain");
        // Back to the loop after a stop and at least every `slice` (the stop, the
        // tail and the profiler pass get their turn under a flood); the next full batch is
        // parsed meanwhile, unless the stop came.
        let stopping = *stop.borrow();
        let more = !stopping && started.elapsed() < slice;
        let next = (!stopping && live.pending.len() >= batch)
            .then(|| parse_off_thread(std::mem::take(&mut live.pending), cfg));
        let (lines, parsed) = ready.await.map_err(|e| IngestError::Parse(e.to_string()))?;
        laps.lap(if drained > 0 {
            "parse_wait"
        } else {
            "parse_wait_empty"
        });
        drop(laps);
        let out = match parsed {
            Ok(parsed) => commit_parsed_or_retry(pipeline, &lines, parsed, None, stop).await,
            Err(why) => Err(IngestError::Parse(why)),
        };
        match out {
            Ok(Some(out)) => {
                // Committed: RELP senders may forget these messages now.
                for a in lines.iter().filter_map(|l| l.ack.as_ref()) {
                    a.send();
                }
                captured |= !out.captured.is_empty();
                match next {
                    Some(n) if more => ready = n,
                    Some(n) => {
                        live.parsing = Some(n);
                        return Ok(captured);
                    }
                    None => return Ok(captured),
                }
            }
            Ok(None) | Err(_) => {
                let mut back = lines;
                if let Some(n) = next {
                    let (more, _) = n.await.map_err(|e| IngestError::Parse(e.to_string()))?;
                    back.extend(more);
                }
                back.append(&mut live.pending);
                live.pending = back;
                return out.map(|_| captured);
            }
        }
    }
}

/// On stop: the listeners stop accepting and hand over what their connections still hold;
/// everything received is committed.
async fn drain_on_stop(
    pipeline: &mut Pipeline,
    live: &mut LiveIntake,
    batch: usize,
    listeners_open: bool,
    stop: &watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let window = drain_window(pipeline.shutdown_grace_s);
    if let Some(l) = &live.listeners {
        // Connections stop reading a little before the loop stops waiting for them.
        l.drain(window.saturating_sub(Duration::from_millis(500)));
    }
    // A batch parsed ahead goes first, as plain lines.
    live.unparse().await;
    let until = tokio::time::Instant::now() + window;
    let mut open = listeners_open;
    while open {
        tokio::select! {
            l = live.rx.recv() => match l {
                Some(l) => {
                    live.pending.push(l);
                    if live.pending.len() >= batch {
                        flush(pipeline, &mut live.pending, stop).await?;
                    }
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(until) => {
                tracing::warn!("ingester: listeners still draining at the stop deadline");
                open = false;
            }
        }
    }
    flush(pipeline, &mut live.pending, stop).await?;
    pipeline.profile_if_due(true).await;
    Ok(())
}

async fn run(
    db: Db,
    mut pipeline: Pipeline,
    s: IngestSettings,
    live: &mut LiveIntake,
    mut stop: watch::Receiver<bool>,
) -> Result<(), IngestError> {
    let mut tail = loop {
        match FileTail::load(&db, &s.log_file).await {
            Ok(t) => {
                break FileTail {
                    max_line: s.max_frame_bytes,
                    ..t
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "ingester: cannot load the file offset; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
        }
    };
    let batch = s.batch_size.max(1);
    // A backlog (lines already in the file or the queue) goes in larger transactions.
    let max_batch = s.batch_max_size.max(batch);
    let extract = Arc::new(pipeline.extract_config().clone());
    let max_wait = Duration::from_millis(s.batch_max_wait_ms.max(1));
    let slice = Duration::from_millis(s.backlog_slice_ms);
    // The tail is polled at least as often as a partial batch may wait.
    let mut tail_tick = tokio::time::interval(Duration::from_millis(
        TAIL_POLL_MS.min(s.batch_max_wait_ms.max(1)),
    ));
    tail_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reuse_every = Duration::from_secs_f64(s.reuse_poll_s.max(0.1));
    let mut reuse_tick = tokio::time::interval(reuse_every);
    reuse_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reuse_dirty = true;
    let mut last_reuse = tokio::time::Instant::now();
    let mut last_reuse_took = Duration::ZERO;
    let mut deadline: Option<tokio::time::Instant> =
        live.holds_lines().then(tokio::time::Instant::now);
    let mut listeners_open = true;

    loop {
        let wait_deadline =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        // The stop first; then the tail, whose tick is ready at most every TAIL_POLL_MS, so
        // that a flood on the listeners (always ready) cannot hold it back; then a due flush
        // (a batch parsed ahead commits at once); then the listeners' lines.
        tokio::select! {
            biased;
            _ = stop.changed() => {
                return drain_on_stop(&mut pipeline, live, max_batch, listeners_open, &stop).await;
            }
            _ = tail_tick.tick() => {
                // Drain what the file holds now, batch by batch: while one batch commits, the
                // next is read and parsed on another thread. Once a slice is up and listener
                // lines wait, they get a slice of their own here, and the rest of the file
                // waits for the next tick.
                let started = tokio::time::Instant::now();
                let mut ready: Option<TailBatch> = None;
                let mut yielded = false;
                // At least one read per turn, whatever the slice.
                let mut first = true;
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    let turn_over = !first
                        && started.elapsed() >= slice
                        && (live.holds_lines() || !live.rx.is_empty());
                    first = false;
                    yielded |= turn_over;
                    // A read error (EMFILE while listeners hold every descriptor, a file being
                    // replaced) is retried on the next tick; it never ends the ingester.
                    let read = match (!turn_over).then(|| tail.read(max_batch)) {
                        // The batch read ahead still commits.
                        None => TailRead::Idle,
                        Some(Ok(r)) => r,
                        Some(Err(e)) => {
                            pipeline.counters.tail_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(path = %s.log_file.display(), error = %e, "ingester: cannot read the ingest file; retrying");
                            TailRead::Idle
                        }
                    };
                    let reset = matches!(read, TailRead::Reset);
                    let next = match read {
                        TailRead::Lines(lines, end) => {
                            // Read on from here; the stored offset moves only with a commit.
                            tail.position = end;
                            let cfg = Arc::clone(&extract);
                            Some(TailBatch {
                                end,
                                identity: tail.identity(),
                                parse: tokio::task::spawn_blocking(move || {
                                    let parsed = ParsedBatch::parse_serial(&lines, &cfg);
                                    (lines, parsed)
                                }),
                            })
                        }
                        _ => None,
                    };
                    // The batch read before this one commits now, before any reset is stored.
                    if let Some(b) = ready.take() {
                        match commit_tail_batch(&mut pipeline, b, &stop).await? {
                            Some(out) => reuse_dirty |= !out.captured.is_empty(),
                            None => break,
                        }
                    }
                    match next {
                        Some(b) => ready = Some(b),
                        None if reset => {
                            if let Err(e) = state::set(&db, POSITION_KEY, &json!({"position": 0})).await {
                                tracing::warn!(error = %e, "ingester: cannot persist the reset offset");
                            }
                        }
                        None => break,
                    }
                }
                if yielded {
                    live.rx.drain_ready(&mut live.pending, max_batch);
                    reuse_dirty |= flush_backlog(&mut pipeline, live, batch, max_batch, slice, &extract, &stop).await?;
                    deadline = live.flush_deadline(max_wait);
                }
            }
            _ = tokio::time::sleep_until(wait_deadline), if deadline.is_some() => {
                live.rx.drain_ready(&mut live.pending, max_batch);
                reuse_dirty |= flush_backlog(&mut pipeline, live, batch, max_batch, slice, &extract, &stop).await?;
                deadline = live.flush_deadline(max_wait);
            }
            line = live.rx.recv(), if listeners_open => match line {
                Some(l) => {
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + max_wait);
                    }
                    if l.ack.is_some() {
                        // A RELP sender waits for this acknowledgement (with a bounded window
                        // of unacknowledged messages): commit soon instead of waiting for a
                        // full batch.
                        let soon = tokio::time::Instant::now() + ACK_LINGER;
                        deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
                    }
                    live.pending.push(l);
                    if live.pending.len() >= batch {
                        // A full batch: take what else is already queued, up to `max_batch`,
                        // then the rest of the backlog batch by batch.
                        live.rx.drain_ready(&mut live.pending, max_batch);
                        reuse_dirty |= flush_backlog(&mut pipeline, live, batch, max_batch, slice, &extract, &stop).await?;
                        deadline = live.flush_deadline(max_wait);
                    }
                }
                None => listeners_open = false,
            },
            _ = reuse_tick.tick() => reuse_dirty = true,
        }
        // Attacker rows catch up as soon as the input pauses (and every
        // `profile_interval_ms` while it does not); the reuse pass reads their uuids.
        // Idle = nothing pending and nothing queued behind it (right after a flush the
        // pending list is empty while a backlog still waits in the queue).
        pipeline
            .profile_if_due(!live.holds_lines() && live.rx.is_empty())
            .await;
        // At most once a second; while a backlog waits, at most every 5 s or 3× its own
        // duration (`reuse_spacing`).
        let backlog = live.holds_lines() || !live.rx.is_empty();
        if reuse_dirty && last_reuse.elapsed() >= reuse_spacing(backlog, last_reuse_took) {
            reuse_dirty = false;
            let started = tokio::time::Instant::now();
            if let Err(e) = pipeline.reuse_pass(s.reuse_min_targets).await {
                tracing::warn!(error = %e, "credential-reuse pass failed");
                reuse_dirty = true;
            }
            last_reuse = tokio::time::Instant::now();
            last_reuse_took = started.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_passes_are_spaced_out_while_lines_keep_arriving() {
        let quick = Duration::from_millis(150);
        // Idle: a second after the last pass, whatever it took.
        assert_eq!(reuse_spacing(false, quick), REUSE_MIN_SPACING);
        assert_eq!(
            reuse_spacing(false, Duration::from_secs(4)),
            REUSE_MIN_SPACING
        );
        // A flood: no pass every second (the listener's loop turns that often).
        assert_eq!(reuse_spacing(true, quick), Duration::from_secs(5));
        let slice = Duration::from_millis(IngestSettings::default().backlog_slice_ms);
        assert!(reuse_spacing(true, quick) > slice);
        // A slow pass still takes at most a tenth of the time.
        assert_eq!(
            reuse_spacing(true, Duration::from_secs(3)),
            Duration::from_secs(27)
        );
    }
}

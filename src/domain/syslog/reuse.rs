//! Credential-reuse correlation (spec §10) as a pure function.
//!
//! Findings are derived from the current credential rows of a group, so a
//! pass with nothing new changes nothing (no drift): `attempt_count` is the
//! SUM over the group (§16.8), `first_seen`/`last_seen` are the min/max of
//! the rows, and the lists only ever grow by appending unseen values.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;
use serde::Serialize;

/// The columns of a `credentials` row the correlator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// Row id (first-seen order).
    pub id: i64,
    /// Back-filled attacker uuid.
    pub attacker_uuid: Option<String>,
    /// Attacker ip.
    pub attacker_ip: String,
    /// Decky.
    pub decky_name: String,
    /// Service.
    pub service: String,
    /// Principal (null when absent).
    pub principal: Option<String>,
    /// `principal` or `""`.
    pub principal_key: String,
    /// Kind.
    pub secret_kind: String,
    /// Hex sha256.
    pub secret_sha256: String,
    /// Attempts on this row.
    pub attempt_count: i64,
    /// First attempt.
    pub first_seen: NaiveDateTime,
    /// Last attempt.
    pub last_seen: NaiveDateTime,
}

/// Group identity: (sha256, kind, principal_key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// Hex sha256.
    pub secret_sha256: String,
    /// Kind.
    pub secret_kind: String,
    /// Principal or `""`.
    pub principal_key: String,
}

/// Credential rows sharing one secret (and principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReuseGroup {
    /// Key.
    pub key: GroupKey,
    /// Rows ordered by id.
    pub rows: Vec<CredentialRow>,
}

impl ReuseGroup {
    /// Distinct `decky:service` targets.
    pub fn target_count(&self) -> usize {
        self.rows
            .iter()
            .map(|r| (r.decky_name.as_str(), r.service.as_str()))
            .collect::<HashSet<_>>()
            .len()
    }
}

/// Group rows and keep the groups with at least `min_targets` distinct
/// `decky:service` targets. Groups are returned in key order, rows by id.
pub fn candidate_groups(
    rows: impl IntoIterator<Item = CredentialRow>,
    min_targets: usize,
) -> Vec<ReuseGroup> {
    let mut groups: BTreeMap<GroupKey, Vec<CredentialRow>> = BTreeMap::new();
    for r in rows {
        let key = GroupKey {
            secret_sha256: r.secret_sha256.clone(),
            secret_kind: r.secret_kind.clone(),
            principal_key: r.principal_key.clone(),
        };
        groups.entry(key).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(key, mut rows)| {
            rows.sort_by_key(|r| r.id);
            ReuseGroup { key, rows }
        })
        .filter(|g| g.target_count() >= min_targets.max(1))
        .collect()
}

/// A `credential_reuse` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// UUIDv4.
    pub id: String,
    /// Hex sha256.
    pub secret_sha256: String,
    /// Kind.
    pub secret_kind: String,
    /// Principal.
    pub principal: Option<String>,
    /// Principal or `""`.
    pub principal_key: String,
    /// Attacker uuids, first-seen order.
    pub attacker_uuids: Vec<String>,
    /// Attacker ips, first-seen order.
    pub attacker_ips: Vec<String>,
    /// Deckies, first-seen order.
    pub deckies: Vec<String>,
    /// Services, first-seen order.
    pub services: Vec<String>,
    /// Distinct `decky:service`.
    pub target_count: i64,
    /// SUM of the group's attempt counts.
    pub attempt_count: i64,
    /// Exact matcher writes 1.0.
    pub confidence: f64,
    /// Min of the rows' first_seen.
    pub first_seen: NaiveDateTime,
    /// Max of the rows' last_seen.
    pub last_seen: NaiveDateTime,
    /// Last write.
    pub updated_at: NaiveDateTime,
}

/// What a pass did to one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New finding: write and publish.
    Inserted,
    /// A list grew: write and publish.
    Grown,
    /// Only counts/times moved: write, do not publish.
    Updated,
    /// Nothing to do.
    Unchanged,
}

impl Change {
    /// Whether `credential.reuse.detected` is published.
    pub fn publishes(self) -> bool {
        matches!(self, Change::Inserted | Change::Grown)
    }

    /// Whether the row must be written.
    pub fn writes(self) -> bool {
        !matches!(self, Change::Unchanged)
    }
}

/// Append the non-empty `values` not yet in `list`, in order; whether anything was added.
/// One hash set per call keeps a pass linear in the group's rows (a group of a common
/// password can hold tens of thousands of rows and thousands of attackers).
fn append_unseen<'r>(list: &mut Vec<String>, values: impl IntoIterator<Item = &'r str>) -> bool {
    let added: Vec<&str> = {
        let mut seen: HashSet<&str> = list.iter().map(String::as_str).collect();
        values
            .into_iter()
            .filter(|v| !v.is_empty() && seen.insert(v))
            .collect()
    };
    list.extend(added.iter().map(|v| (*v).to_owned()));
    !added.is_empty()
}

/// Compute the finding for a group given the stored one.
pub fn correlate(
    group: &ReuseGroup,
    existing: Option<&Finding>,
    now: NaiveDateTime,
    new_id: impl FnOnce() -> String,
) -> (Finding, Change) {
    let first_seen = group.rows.iter().map(|r| r.first_seen).min().unwrap_or(now);
    let last_seen = group.rows.iter().map(|r| r.last_seen).max().unwrap_or(now);
    let principal = group.rows.iter().find_map(|r| r.principal.clone());
    let mut f = match existing {
        Some(e) => e.clone(),
        None => Finding {
            id: new_id(),
            secret_sha256: group.key.secret_sha256.clone(),
            secret_kind: group.key.secret_kind.clone(),
            principal: principal.clone(),
            principal_key: group.key.principal_key.clone(),
            attacker_uuids: Vec::new(),
            attacker_ips: Vec::new(),
            deckies: Vec::new(),
            services: Vec::new(),
            target_count: 0,
            attempt_count: 0,
            confidence: 1.0,
            first_seen,
            last_seen,
            updated_at: now,
        },
    };
    let rows = &group.rows;
    let mut grew = append_unseen(
        &mut f.attacker_uuids,
        rows.iter().filter_map(|r| r.attacker_uuid.as_deref()),
    );
    grew |= append_unseen(
        &mut f.attacker_ips,
        rows.iter().map(|r| r.attacker_ip.as_str()),
    );
    grew |= append_unseen(&mut f.deckies, rows.iter().map(|r| r.decky_name.as_str()));
    grew |= append_unseen(&mut f.services, rows.iter().map(|r| r.service.as_str()));
    let target_count = group.target_count() as i64;
    let attempt_count: i64 = group.rows.iter().map(|r| r.attempt_count).sum();
    let first_seen = existing.map_or(first_seen, |e| e.first_seen.min(first_seen));
    let moved = f.target_count != target_count
        || f.attempt_count != attempt_count
        || f.first_seen != first_seen
        || f.last_seen != last_seen
        || (f.principal.is_none() && principal.is_some());
    f.target_count = target_count;
    f.attempt_count = attempt_count;
    f.first_seen = first_seen;
    f.last_seen = last_seen;
    if f.principal.is_none() {
        f.principal = principal;
    }
    let change = match (existing, grew, moved) {
        (None, _, _) => Change::Inserted,
        (Some(_), true, _) => Change::Grown,
        (Some(_), false, true) => Change::Updated,
        (Some(_), false, false) => Change::Unchanged,
    };
    if change.writes() {
        f.updated_at = now;
    }
    (f, change)
}

/// Payload of `credential.reuse.detected` (lists as real arrays, §16.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReuseDetected {
    /// Finding id.
    pub id: String,
    /// Kind.
    pub secret_kind: String,
    /// Targets.
    pub target_count: i64,
    /// Attacker uuids.
    pub attacker_uuids: Vec<String>,
    /// Attacker ips.
    pub attacker_ips: Vec<String>,
    /// Deckies.
    pub deckies: Vec<String>,
    /// Services.
    pub services: Vec<String>,
}

impl Finding {
    /// Bus payload.
    pub fn detected_payload(&self) -> ReuseDetected {
        ReuseDetected {
            id: self.id.clone(),
            secret_kind: self.secret_kind.clone(),
            target_count: self.target_count,
            attacker_uuids: self.attacker_uuids.clone(),
            attacker_ips: self.attacker_ips.clone(),
            deckies: self.deckies.clone(),
            services: self.services.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t(h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 5, 14)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .unwrap()
    }

    fn row(id: i64, ip: &str, decky: &str, svc: &str, principal: Option<&str>) -> CredentialRow {
        CredentialRow {
            id,
            attacker_uuid: None,
            attacker_ip: ip.into(),
            decky_name: decky.into(),
            service: svc.into(),
            principal: principal.map(Into::into),
            principal_key: principal.unwrap_or("").into(),
            secret_kind: "plaintext".into(),
            secret_sha256: "aa".into(),
            attempt_count: 1,
            first_seen: t(id as u32),
            last_seen: t(id as u32),
        }
    }

    fn pass(
        rows: &[CredentialRow],
        store: &mut BTreeMap<GroupKey, Finding>,
        min: usize,
        now: u32,
    ) -> Vec<(Finding, Change)> {
        let mut out = Vec::new();
        let mut n = store.len();
        for g in candidate_groups(rows.to_vec(), min) {
            let (f, ch) = correlate(&g, store.get(&g.key), t(now), || {
                n += 1;
                format!("id-{n}")
            });
            if ch.writes() {
                store.insert(g.key.clone(), f.clone());
            }
            if ch.publishes() {
                out.push((f, ch));
            }
        }
        out
    }

    #[test]
    fn threshold_and_grouping() {
        let rows = vec![row(1, "1.1.1.1", "d1", "ssh", Some("root"))];
        assert!(candidate_groups(rows.clone(), 2).is_empty());
        let mut rows2 = rows.clone();
        rows2.push(row(2, "2.2.2.2", "d2", "ssh", Some("root")));
        assert_eq!(candidate_groups(rows2.clone(), 2).len(), 1);
        assert!(candidate_groups(rows2.clone(), 3).is_empty());
        // distinct principals are distinct groups
        let mut rows3 = rows.clone();
        rows3.push(row(2, "2.2.2.2", "d2", "ssh", Some("admin")));
        assert!(candidate_groups(rows3, 2).is_empty());
        // repeated decky/service is not double counted
        let rows4 = vec![
            row(1, "1.1.1.1", "d1", "ssh", None),
            row(2, "2.2.2.2", "d1", "ssh", None),
            row(3, "3.3.3.3", "d1", "ssh", None),
        ];
        assert!(candidate_groups(rows4.clone(), 2).is_empty());
        let g = &candidate_groups(rows4, 1)[0];
        let (f, ch) = correlate(g, None, t(9), || "x".into());
        assert_eq!(
            (f.target_count, f.attempt_count, ch),
            (1, 3, Change::Inserted)
        );
        assert_eq!(f.confidence, 1.0);
    }

    #[test]
    fn idempotent_then_grows() {
        let mut store = BTreeMap::new();
        let mut rows = vec![
            row(1, "1.1.1.1", "d1", "ssh", Some("root")),
            row(2, "2.2.2.2", "d2", "ftp", Some("root")),
        ];
        let first = pass(&rows, &mut store, 2, 10);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].1, Change::Inserted);
        assert_eq!(first[0].0.target_count, 2);
        assert_eq!(first[0].0.deckies, vec!["d1", "d2"]);
        let snapshot = store.clone();
        assert!(pass(&rows, &mut store, 2, 11).is_empty());
        assert_eq!(store, snapshot, "second pass must not drift");
        // more attempts on an existing row: written, not published, no drift after
        rows[0].attempt_count = 5;
        assert!(pass(&rows, &mut store, 2, 12).is_empty());
        assert_eq!(store.values().next().unwrap().attempt_count, 6);
        let snap2 = store.clone();
        assert!(pass(&rows, &mut store, 2, 13).is_empty());
        assert_eq!(store, snap2);
        // a third target grows the finding
        rows.push(row(3, "3.3.3.3", "d3", "ssh", Some("root")));
        let grown = pass(&rows, &mut store, 2, 14);
        assert_eq!(grown.len(), 1);
        assert_eq!((grown[0].1, grown[0].0.target_count), (Change::Grown, 3));
        assert_eq!(grown[0].0.id, first[0].0.id);
        // back-filled uuid grows the uuid list
        rows[0].attacker_uuid = Some("u-1".into());
        let grown = pass(&rows, &mut store, 2, 15);
        assert_eq!(grown[0].0.attacker_uuids, vec!["u-1"]);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn lists_keep_first_seen_order_without_repeats() {
        let mut existing = vec!["b".to_owned()];
        assert!(append_unseen(&mut existing, ["a", "b", "", "a", "c", "b"]));
        assert_eq!(existing, vec!["b", "a", "c"]);
        assert!(!append_unseen(&mut existing, ["c", "", "a"]));
        assert_eq!(existing, vec!["b", "a", "c"]);
        // a large group (one common password, many attackers) is correlated in one pass
        let rows: Vec<CredentialRow> = (1..=5000)
            .map(|i| {
                let ip = format!("10.0.{}.{}", i / 250, i % 250);
                let mut r = row(1, &ip, "d1", "ssh", None);
                r.id = i;
                r.decky_name = format!("d{}", i % 7);
                r.attacker_uuid = Some(format!("u-{}", i % 1000));
                r
            })
            .collect();
        let g = candidate_groups(rows, 2).remove(0);
        let (f, change) = correlate(&g, None, t(1), || "id".into());
        assert_eq!(change, Change::Inserted);
        assert_eq!(f.attacker_ips.len(), 5000);
        assert_eq!(f.attacker_uuids.len(), 1000);
        assert_eq!(f.attacker_uuids[..2], ["u-1", "u-2"]);
        assert_eq!(f.deckies, vec!["d1", "d2", "d3", "d4", "d5", "d6", "d0"]);
    }
}

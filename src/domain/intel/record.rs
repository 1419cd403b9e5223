//! The merged `attacker_intel` provider columns, one enrichment pass folded into them, and the
//! `attacker.intel.enriched` payload projection.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{abuseipdb, aggregate, feodo, greynoise, threatfox, ProviderName, Verdict};

/// Envelope `type` of `attacker.intel.enriched`.
pub const ENRICHED_EVENT_TYPE: &str = "intel.enriched";

/// One provider's mapped answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnUpdate {
    GreyNoise(greynoise::Columns),
    AbuseIpdb(abuseipdb::Columns),
    Feodo(feodo::Columns),
    ThreatFox(threatfox::Columns),
}

impl ColumnUpdate {
    pub fn provider(&self) -> ProviderName {
        match self {
            ColumnUpdate::GreyNoise(_) => ProviderName::GreyNoise,
            ColumnUpdate::AbuseIpdb(_) => ProviderName::AbuseIpdb,
            ColumnUpdate::Feodo(_) => ProviderName::Feodo,
            ColumnUpdate::ThreatFox(_) => ProviderName::ThreatFox,
        }
    }

    /// The provider-local verdict (`None` = no opinion).
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            ColumnUpdate::GreyNoise(c) => Some(c.verdict()),
            ColumnUpdate::AbuseIpdb(c) => Some(c.verdict()),
            ColumnUpdate::Feodo(c) => c.verdict(),
            ColumnUpdate::ThreatFox(c) => c.verdict(),
        }
    }
}

/// A successful lookup: the columns to write and when the provider answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderReport {
    pub update: ColumnUpdate,
    pub queried_at: DateTime<Utc>,
}

impl ProviderReport {
    pub fn new(update: ColumnUpdate, queried_at: DateTime<Utc>) -> Self {
        ProviderReport { update, queried_at }
    }

    pub fn provider(&self) -> ProviderName {
        self.update.provider()
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.update.verdict()
    }
}

/// Every provider column of an `attacker_intel` row (§5.6) plus the aggregate verdict.
/// A provider whose `*_queried_at` is null has never answered for this attacker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntelFields {
    pub greynoise_classification: Option<String>,
    pub greynoise_name: Option<String>,
    pub greynoise_tags: Vec<String>,
    pub greynoise_raw: Value,
    pub greynoise_queried_at: Option<DateTime<Utc>>,
    pub abuseipdb_score: Option<i32>,
    pub abuseipdb_categories: Vec<i64>,
    pub abuseipdb_raw: Value,
    pub abuseipdb_queried_at: Option<DateTime<Utc>>,
    pub feodo_listed: Option<bool>,
    pub feodo_malware_family: Option<String>,
    pub feodo_raw: Value,
    pub feodo_queried_at: Option<DateTime<Utc>>,
    pub threatfox_listed: Option<bool>,
    pub threatfox_threat_types: Vec<String>,
    pub threatfox_ioc_types: Vec<String>,
    pub threatfox_malware_families: Vec<String>,
    pub threatfox_raw: Value,
    pub threatfox_queried_at: Option<DateTime<Utc>>,
    pub aggregate_verdict: Option<Verdict>,
}

impl Default for IntelFields {
    /// The column defaults of a fresh row: scalars null, lists `[]`, raws `{}`.
    fn default() -> Self {
        let empty = || Value::Object(Map::new());
        IntelFields {
            greynoise_classification: None,
            greynoise_name: None,
            greynoise_tags: Vec::new(),
            greynoise_raw: empty(),
            greynoise_queried_at: None,
            abuseipdb_score: None,
            abuseipdb_categories: Vec::new(),
            abuseipdb_raw: empty(),
            abuseipdb_queried_at: None,
            feodo_listed: None,
            feodo_malware_family: None,
            feodo_raw: empty(),
            feodo_queried_at: None,
            threatfox_listed: None,
            threatfox_threat_types: Vec::new(),
            threatfox_ioc_types: Vec::new(),
            threatfox_malware_families: Vec::new(),
            threatfox_raw: empty(),
            threatfox_queried_at: None,
            aggregate_verdict: None,
        }
    }
}

impl IntelFields {
    /// Overwrite the reporting provider's columns (and only those).
    pub fn apply(&mut self, report: &ProviderReport) {
        let at = Some(report.queried_at);
        match &report.update {
            ColumnUpdate::GreyNoise(c) => {
                self.greynoise_classification = Some(c.classification.clone());
                self.greynoise_name = c.name.clone();
                self.greynoise_tags = c.tags.clone();
                self.greynoise_raw = c.raw.clone();
                self.greynoise_queried_at = at;
            }
            ColumnUpdate::AbuseIpdb(c) => {
                self.abuseipdb_score = Some(c.score);
                self.abuseipdb_categories = c.categories.clone();
                self.abuseipdb_raw = c.raw.clone();
                self.abuseipdb_queried_at = at;
            }
            ColumnUpdate::Feodo(c) => {
                self.feodo_listed = Some(c.listed);
                self.feodo_malware_family = c.malware_family.clone();
                self.feodo_raw = c.raw.clone();
                self.feodo_queried_at = at;
            }
            ColumnUpdate::ThreatFox(c) => {
                self.threatfox_listed = Some(c.listed);
                self.threatfox_threat_types = c.threat_types.clone();
                self.threatfox_ioc_types = c.ioc_types.clone();
                self.threatfox_malware_families = c.malware_families.clone();
                self.threatfox_raw = c.raw.clone();
                self.threatfox_queried_at = at;
            }
        }
    }

    /// The verdict the stored columns of `provider` express; `None` when the provider never
    /// answered for this attacker or has no opinion.
    pub fn provider_verdict(&self, provider: ProviderName) -> Option<Verdict> {
        match provider {
            ProviderName::GreyNoise => self
                .greynoise_queried_at
                .and(self.greynoise_classification.as_deref())
                .map(greynoise::classification_verdict),
            ProviderName::AbuseIpdb => self
                .abuseipdb_queried_at
                .and(self.abuseipdb_score)
                .map(abuseipdb::score_verdict),
            ProviderName::Feodo => self
                .feodo_queried_at
                .and(self.feodo_listed)
                .and_then(|l| l.then_some(Verdict::Malicious)),
            ProviderName::ThreatFox => self
                .threatfox_queried_at
                .and(self.threatfox_listed)
                .and_then(|l| l.then_some(Verdict::Malicious)),
        }
    }

    /// The aggregate over every provider's stored columns (not just this pass's answers), so
    /// a provider that failed this pass keeps contributing its last answer.
    pub fn computed_aggregate(&self) -> Option<Verdict> {
        aggregate(ProviderName::ALL.map(|p| self.provider_verdict(p)))
    }
}

/// What one enrichment pass does to an attacker's row.
#[derive(Debug, Clone, PartialEq)]
pub struct PassResult {
    /// Previous columns with this pass's answers applied; aggregate recomputed over them.
    pub fields: IntelFields,
    pub cached_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// At least one provider answered. When false, nothing new was learned: the row keeps
    /// its columns, verdict and `cached_at`, and is retried after `retry_backoff` instead of
    /// getting a full TTL.
    pub enriched: bool,
}

/// Fold one pass's successful `reports` into the previous row (if any).
///
/// * A provider that did not answer keeps its previous columns (never erased).
/// * The aggregate is recomputed over the merged columns, so a failure can never downgrade
///   or null a verdict; a provider's *own* new answer can.
/// * At least one answer → `cached_at = now`, `expires_at = now + ttl`.
///   No answer → `cached_at` unchanged (now for a new row), `expires_at = now + retry_backoff`.
pub fn merge_pass(
    previous: Option<(&IntelFields, DateTime<Utc>)>,
    reports: &[ProviderReport],
    now: DateTime<Utc>,
    ttl: TimeDelta,
    retry_backoff: TimeDelta,
) -> PassResult {
    let mut fields = previous.map(|(f, _)| f.clone()).unwrap_or_default();
    for r in reports {
        fields.apply(r);
    }
    fields.aggregate_verdict = fields.computed_aggregate();
    let enriched = !reports.is_empty();
    let (cached_at, expires_at) = if enriched {
        (now, now + ttl)
    } else {
        (previous.map_or(now, |(_, c)| c), now + retry_backoff)
    };
    PassResult {
        fields,
        cached_at,
        expires_at,
        enriched,
    }
}

/// A pass that deliberately asked nobody (e.g. a private address): columns and verdict stay as
/// they were, and the attacker is not looked at again before a full TTL.
pub fn skipped_pass(
    previous: Option<(&IntelFields, DateTime<Utc>)>,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> PassResult {
    let mut fields = previous.map(|(f, _)| f.clone()).unwrap_or_default();
    fields.aggregate_verdict = fields.computed_aggregate();
    PassResult {
        fields,
        cached_at: previous.map_or(now, |(_, c)| c),
        expires_at: now + ttl,
        enriched: false,
    }
}

/// The `attacker.intel.enriched` payload (§11.5) projected from the row as stored after the
/// pass. `providers` = the providers that took part in the pass (`None` for the TTP worker's
/// catch-up projection, which omits the key).
pub fn enriched_payload(
    attacker_uuid: &str,
    attacker_ip: &str,
    fields: &IntelFields,
    providers: Option<&[ProviderName]>,
) -> Value {
    let mut v = json!({
        "attacker_uuid": attacker_uuid,
        "attacker_ip": attacker_ip,
        "aggregate_verdict": fields.aggregate_verdict,
        "abuseipdb_score": fields.abuseipdb_score,
        "abuseipdb_categories": fields.abuseipdb_categories,
        "greynoise_classification": fields.greynoise_classification,
        "greynoise_name": fields.greynoise_name,
        "greynoise_tags": fields.greynoise_tags,
        "feodo_listed": fields.feodo_listed,
        "feodo_malware_family": fields.feodo_malware_family,
        "threatfox_listed": fields.threatfox_listed,
        "threatfox_threat_types": fields.threatfox_threat_types,
        "threatfox_ioc_types": fields.threatfox_ioc_types,
        "threatfox_malware_families": fields.threatfox_malware_families,
    });
    if let (Some(list), Some(obj)) = (providers, v.as_object_mut()) {
        obj.insert(
            "providers".into(),
            Value::Array(list.iter().map(|p| json!(p.as_str())).collect()),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()
    }

    fn gn(classification: &str) -> ProviderReport {
        ProviderReport::new(
            ColumnUpdate::GreyNoise(greynoise::Columns {
                classification: classification.into(),
                name: Some("Mirai".into()),
                tags: vec!["Mirai".into()],
                raw: json!({"classification": classification}),
            }),
            t(1),
        )
    }

    fn abuse(score: i32) -> ProviderReport {
        ProviderReport::new(
            ColumnUpdate::AbuseIpdb(abuseipdb::Columns {
                score,
                categories: vec![18, 22],
                raw: json!({"abuseConfidenceScore": score}),
            }),
            t(1),
        )
    }

    fn feodo_r(listed: bool) -> ProviderReport {
        ProviderReport::new(
            ColumnUpdate::Feodo(feodo::Columns {
                listed,
                malware_family: listed.then(|| "Emotet".into()),
                raw: json!({}),
            }),
            t(1),
        )
    }

    fn tf(listed: bool) -> ProviderReport {
        ProviderReport::new(
            ColumnUpdate::ThreatFox(threatfox::Columns {
                listed,
                threat_types: if listed {
                    vec!["botnet_cc".into()]
                } else {
                    vec![]
                },
                ioc_types: vec![],
                malware_families: vec![],
                raw: json!([]),
            }),
            t(1),
        )
    }

    const TTL: TimeDelta = TimeDelta::hours(24);
    const BACKOFF: TimeDelta = TimeDelta::minutes(5);

    #[test]
    fn defaults_match_a_fresh_row() {
        let f = IntelFields::default();
        assert_eq!(f.greynoise_raw, json!({}));
        assert_eq!(f.threatfox_raw, json!({}));
        assert!(f.greynoise_tags.is_empty() && f.abuseipdb_categories.is_empty());
        assert_eq!(f.aggregate_verdict, None);
        assert_eq!(f.computed_aggregate(), None);
        for p in ProviderName::ALL {
            assert_eq!(f.provider_verdict(p), None);
        }
    }

    #[test]
    fn first_pass_writes_columns_and_aggregate() {
        let r = merge_pass(
            None,
            &[gn("benign"), abuse(30), feodo_r(false)],
            t(2),
            TTL,
            BACKOFF,
        );
        assert!(r.enriched);
        assert_eq!(r.cached_at, t(2));
        assert_eq!(r.expires_at, t(2) + TTL);
        assert_eq!(r.fields.greynoise_classification.as_deref(), Some("benign"));
        assert_eq!(r.fields.greynoise_queried_at, Some(t(1)));
        assert_eq!(r.fields.abuseipdb_score, Some(30));
        assert_eq!(r.fields.abuseipdb_categories, vec![18, 22]);
        assert_eq!(r.fields.feodo_listed, Some(false));
        assert_eq!(
            r.fields.threatfox_listed, None,
            "silent provider stays null"
        );
        assert_eq!(r.fields.threatfox_queried_at, None);
        assert_eq!(r.fields.aggregate_verdict, Some(Verdict::Suspicious));
    }

    #[test]
    fn failed_provider_keeps_previous_columns_and_verdict() {
        let first = merge_pass(None, &[gn("benign"), tf(true)], t(2), TTL, BACKOFF);
        assert_eq!(first.fields.aggregate_verdict, Some(Verdict::Malicious));
        // ThreatFox fails this time; GreyNoise answers again.
        let second = merge_pass(
            Some((&first.fields, first.cached_at)),
            &[gn("unknown")],
            t(5),
            TTL,
            BACKOFF,
        );
        assert!(second.enriched);
        assert_eq!(second.fields.threatfox_listed, Some(true));
        assert_eq!(second.fields.threatfox_threat_types, vec!["botnet_cc"]);
        assert_eq!(
            second.fields.greynoise_classification.as_deref(),
            Some("unknown")
        );
        assert_eq!(second.fields.aggregate_verdict, Some(Verdict::Malicious));
        assert_eq!(second.expires_at, t(5) + TTL);
    }

    #[test]
    fn all_failed_pass_keeps_everything_and_does_not_extend_ttl() {
        let first = merge_pass(None, &[abuse(90)], t(2), TTL, BACKOFF);
        let second = merge_pass(
            Some((&first.fields, first.cached_at)),
            &[],
            t(3),
            TTL,
            BACKOFF,
        );
        assert!(!second.enriched);
        assert_eq!(second.fields, first.fields);
        assert_eq!(second.fields.aggregate_verdict, Some(Verdict::Malicious));
        assert_eq!(second.cached_at, t(2), "cached_at is not refreshed");
        assert_eq!(second.expires_at, t(3) + BACKOFF);
    }

    #[test]
    fn all_failed_first_pass_is_an_empty_row_retried_soon() {
        let r = merge_pass(None, &[], t(2), TTL, BACKOFF);
        assert!(!r.enriched);
        assert_eq!(r.fields, IntelFields::default());
        assert_eq!(r.cached_at, t(2));
        assert_eq!(r.expires_at, t(2) + BACKOFF);
    }

    #[test]
    fn skipped_pass_keeps_columns_and_waits_a_full_ttl() {
        let fresh = skipped_pass(None, t(2), TTL);
        assert_eq!(fresh.fields, IntelFields::default());
        assert_eq!((fresh.cached_at, fresh.expires_at), (t(2), t(2) + TTL));
        assert!(!fresh.enriched);
        let first = merge_pass(None, &[abuse(80)], t(2), TTL, BACKOFF);
        let again = skipped_pass(Some((&first.fields, first.cached_at)), t(9), TTL);
        assert_eq!(again.fields, first.fields);
        assert_eq!(again.cached_at, t(2));
        assert_eq!(again.expires_at, t(9) + TTL);
    }

    #[test]
    fn a_providers_own_new_answer_can_lower_the_verdict() {
        let first = merge_pass(None, &[abuse(90)], t(2), TTL, BACKOFF);
        let second = merge_pass(
            Some((&first.fields, first.cached_at)),
            &[abuse(10)],
            t(3),
            TTL,
            BACKOFF,
        );
        assert_eq!(second.fields.aggregate_verdict, Some(Verdict::Benign));
    }

    #[test]
    fn unlisted_feeds_alone_give_no_verdict() {
        let r = merge_pass(None, &[feodo_r(false), tf(false)], t(2), TTL, BACKOFF);
        assert_eq!(r.fields.aggregate_verdict, None);
        assert!(r.enriched);
        let r = merge_pass(None, &[feodo_r(true)], t(2), TTL, BACKOFF);
        assert_eq!(r.fields.aggregate_verdict, Some(Verdict::Malicious));
        assert_eq!(r.fields.feodo_malware_family.as_deref(), Some("Emotet"));
    }

    #[test]
    fn stored_columns_without_queried_at_express_no_opinion() {
        let f = IntelFields {
            abuseipdb_score: Some(99),
            ..IntelFields::default()
        };
        assert_eq!(f.provider_verdict(ProviderName::AbuseIpdb), None);
    }

    #[test]
    fn report_exposes_provider_and_verdict() {
        assert_eq!(gn("malicious").provider(), ProviderName::GreyNoise);
        assert_eq!(gn("weird").verdict(), Some(Verdict::Unknown));
        assert_eq!(abuse(25).verdict(), Some(Verdict::Suspicious));
        assert_eq!(feodo_r(false).verdict(), None);
        assert_eq!(tf(true).provider(), ProviderName::ThreatFox);
    }

    #[test]
    fn payload_shape_and_defaults() {
        let r = merge_pass(None, &[gn("malicious")], t(2), TTL, BACKOFF);
        let p = enriched_payload(
            "0b3c-uuid",
            "203.0.113.9",
            &r.fields,
            Some(&[ProviderName::GreyNoise, ProviderName::Feodo]),
        );
        assert_eq!(
            p,
            json!({
                "attacker_uuid": "0b3c-uuid",
                "attacker_ip": "203.0.113.9",
                "aggregate_verdict": "malicious",
                "providers": ["greynoise", "feodo"],
                "abuseipdb_score": null,
                "abuseipdb_categories": [],
                "greynoise_classification": "malicious",
                "greynoise_name": "Mirai",
                "greynoise_tags": ["Mirai"],
                "feodo_listed": null,
                "feodo_malware_family": null,
                "threatfox_listed": null,
                "threatfox_threat_types": [],
                "threatfox_ioc_types": [],
                "threatfox_malware_families": [],
            })
        );
        let catch_up = enriched_payload("u", "ip", &IntelFields::default(), None);
        assert!(catch_up.get("providers").is_none());
        assert_eq!(catch_up["aggregate_verdict"], Value::Null);
    }
}

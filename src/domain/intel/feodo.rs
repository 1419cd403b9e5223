//! abuse.ch Feodo Tracker bulk feed (`GET /downloads/ipblocklist.json`): the body is indexed
//! once per refresh and every lookup is answered from the index.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{clip, MapError, Verdict, FEODO_FAMILY_MAX};

/// The `feodo_*` columns one successful lookup writes (plus `feodo_queried_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    pub listed: bool,
    pub malware_family: Option<String>,
    /// The feed entry when listed, `{}` otherwise.
    pub raw: Value,
}

impl Columns {
    /// Listed → malicious; not listed → no opinion (absence from a C2 list is not "benign").
    pub fn verdict(&self) -> Option<Verdict> {
        self.listed.then_some(Verdict::Malicious)
    }
}

/// The in-memory index of one feed download, keyed by parsed IP (so `::ffff:`-free textual
/// variants such as leading zeros in IPv6 compare equal).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeodoIndex {
    entries: HashMap<IpAddr, Map<String, Value>>,
    skipped: usize,
}

impl FeodoIndex {
    /// Index a feed body. The body must be a JSON list; items that are not objects or have no
    /// parseable `ip_address` are skipped (counted in [`FeodoIndex::skipped`]). When an IP
    /// appears more than once (several C2 ports) the first entry is kept.
    pub fn from_feed(body: &Value) -> Result<FeodoIndex, MapError> {
        let items = body
            .as_array()
            .ok_or_else(|| MapError::Parse("feodo feed is not a JSON list".into()))?;
        let mut index = FeodoIndex::default();
        for item in items {
            let parsed = item.as_object().and_then(|obj| {
                let ip = obj
                    .get("ip_address")?
                    .as_str()?
                    .trim()
                    .parse::<IpAddr>()
                    .ok()?;
                Some((ip, obj))
            });
            match parsed {
                Some((ip, obj)) => {
                    index.entries.entry(ip).or_insert_with(|| obj.clone());
                }
                None => index.skipped += 1,
            }
        }
        Ok(index)
    }

    /// Number of distinct listed IPs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Feed items that were ignored while indexing.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Answer one lookup.
    pub fn lookup(&self, ip: IpAddr) -> Columns {
        match self.entries.get(&ip) {
            Some(entry) => Columns {
                listed: true,
                malware_family: entry
                    .get("malware")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(|s| clip(s, FEODO_FAMILY_MAX)),
                raw: Value::Object(entry.clone()),
            },
            None => Columns {
                listed: false,
                malware_family: None,
                raw: Value::Object(Map::new()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feed() -> Value {
        json!([
            {"ip_address": "162.243.103.246", "port": 8080, "status": "offline",
             "hostname": null, "as_number": 14061, "as_name": "DIGITALOCEAN-ASN",
             "country": "US", "first_seen": "2021-01-17 07:44:46",
             "last_online": "2021-11-29", "malware": "Emotet"},
            {"ip_address": "162.243.103.246", "port": 443, "malware": "Dridex"},
            {"ip_address": "2001:db8:0:0::1", "port": 443, "malware": ""},
            {"ip_address": "not an ip", "malware": "QakBot"},
            {"port": 1},
            "junk"
        ])
    }

    #[test]
    fn listed_entry_maps_family_and_raw() {
        let idx = FeodoIndex::from_feed(&feed()).unwrap();
        let c = idx.lookup("162.243.103.246".parse().unwrap());
        assert!(c.listed);
        assert_eq!(c.verdict(), Some(Verdict::Malicious));
        assert_eq!(
            c.malware_family.as_deref(),
            Some("Emotet"),
            "first entry kept"
        );
        assert_eq!(c.raw["port"], 8080);
        assert_eq!(c.raw["as_name"], "DIGITALOCEAN-ASN");
    }

    #[test]
    fn listed_without_family_and_ipv6_normalised() {
        let idx = FeodoIndex::from_feed(&feed()).unwrap();
        let c = idx.lookup("2001:db8::1".parse().unwrap());
        assert!(c.listed);
        assert_eq!(c.malware_family, None);
        assert_eq!(c.verdict(), Some(Verdict::Malicious));
    }

    #[test]
    fn unlisted_is_no_opinion() {
        let idx = FeodoIndex::from_feed(&feed()).unwrap();
        let c = idx.lookup("8.8.8.8".parse().unwrap());
        assert!(!c.listed);
        assert_eq!(c.malware_family, None);
        assert_eq!(c.raw, json!({}));
        assert_eq!(c.verdict(), None);
    }

    #[test]
    fn index_counts_and_skips() {
        let idx = FeodoIndex::from_feed(&feed()).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.skipped(), 3);
        assert!(!idx.is_empty());
        let empty = FeodoIndex::from_feed(&json!([])).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn non_list_feed_is_a_parse_error() {
        for body in [json!({}), json!({"data": []}), json!(null), json!("x")] {
            assert!(matches!(
                FeodoIndex::from_feed(&body),
                Err(MapError::Parse(_))
            ));
        }
    }
}

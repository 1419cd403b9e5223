//! intel tables: `attacker_intel` (intake-and-intel spec §5.6).

diesel::table! {
    /// Threat-intel enrichment of one attacker (one row per attacker).
    attacker_intel (uuid) {
        /// 32-hex UUIDv4 (no hyphens), minted by the writer.
        uuid -> Text,
        /// UNIQUE, FK attackers.uuid: the canonical key.
        attacker_uuid -> Text,
        /// Denormalised copy of the attacker's IP (indexed, never a lookup key).
        attacker_ip -> Text,
        schema_version -> Integer,
        greynoise_classification -> Nullable<Text>,
        greynoise_name -> Nullable<Text>,
        /// JSON list[str].
        greynoise_tags -> Text,
        /// JSON object.
        greynoise_raw -> Text,
        greynoise_queried_at -> Nullable<Timestamp>,
        abuseipdb_score -> Nullable<Integer>,
        /// JSON list[int].
        abuseipdb_categories -> Text,
        /// JSON object.
        abuseipdb_raw -> Text,
        abuseipdb_queried_at -> Nullable<Timestamp>,
        feodo_listed -> Nullable<Bool>,
        feodo_malware_family -> Nullable<Text>,
        /// JSON object.
        feodo_raw -> Text,
        feodo_queried_at -> Nullable<Timestamp>,
        threatfox_listed -> Nullable<Bool>,
        /// JSON list[str], sorted.
        threatfox_threat_types -> Text,
        /// JSON list[str], sorted.
        threatfox_ioc_types -> Text,
        /// JSON list[str], sorted.
        threatfox_malware_families -> Text,
        /// JSON: the match list when listed, `{}` otherwise.
        threatfox_raw -> Text,
        threatfox_queried_at -> Nullable<Timestamp>,
        /// malicious / suspicious / benign / unknown, or NULL (no opinion).
        aggregate_verdict -> Nullable<Text>,
        cached_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

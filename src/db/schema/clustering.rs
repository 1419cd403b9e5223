//! clustering tables (spec clustering.md §2): identities, campaigns, and the evidence rows
//! behind them. The `attackers` table belongs to intake; the clusterer reads and writes it
//! through the column subset declared in [`observation_view`].

diesel::table! {
    campaigns (uuid) {
        uuid -> Text,
        schema_version -> BigInt,
        first_seen_at -> Nullable<Timestamp>,
        last_seen_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confidence -> Nullable<Double>,
        identity_count -> BigInt,
        ja3_hashes -> Nullable<Text>,
        hassh_hashes -> Nullable<Text>,
        tls_cert_sha256 -> Nullable<Text>,
        payload_simhashes -> Nullable<Text>,
        c2_endpoints -> Nullable<Text>,
        merged_into_uuid -> Nullable<Text>,
        notes -> Nullable<Text>,
    }
}

diesel::table! {
    attacker_identities (uuid) {
        uuid -> Text,
        schema_version -> BigInt,
        campaign_id -> Nullable<Text>,
        first_seen_at -> Nullable<Timestamp>,
        last_seen_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confidence -> Nullable<Double>,
        observation_count -> BigInt,
        ja3_hashes -> Nullable<Text>,
        hassh_hashes -> Nullable<Text>,
        ja4h_hashes -> Nullable<Text>,
        ja4_quic_hashes -> Nullable<Text>,
        http_versions_seen -> Nullable<Text>,
        tls_cert_sha256 -> Nullable<Text>,
        ipv6_link_local_iids -> Nullable<Text>,
        payload_simhashes -> Nullable<Text>,
        c2_endpoints -> Nullable<Text>,
        kd_digraph_simhash -> Nullable<Binary>,
        merged_into_uuid -> Nullable<Text>,
        notes -> Nullable<Text>,
        /// `updated_at` as the identity layer last processed it (dirty while different).
        clustered_at -> Nullable<Timestamp>,
        /// `updated_at` as the campaign layer last processed it (dirty while different).
        campaign_clustered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Linking keys of every processed observation (JA3, HASSH, payload hash, C2 endpoint).
    observation_cluster_keys (cluster_key, observation_uuid) {
        cluster_key -> Text,
        observation_uuid -> Text,
    }
}

diesel::table! {
    /// Campaign candidate keys of every processed active identity (token, keystroke band).
    identity_cluster_keys (cluster_key, identity_uuid) {
        cluster_key -> Text,
        identity_uuid -> Text,
    }
}

diesel::table! {
    identity_evidence (id) {
        id -> BigInt,
        identity_uuid -> Text,
        observation_a -> Text,
        observation_b -> Text,
        signal -> Text,
        value -> Text,
        weight -> Double,
        created_at -> Timestamp,
    }
}

diesel::table! {
    campaign_evidence (id) {
        id -> BigInt,
        campaign_uuid -> Text,
        identity_a -> Text,
        identity_b -> Text,
        weight -> Double,
        handoff -> Double,
        shared_infra -> Double,
        overlap -> Double,
        cohort -> Double,
        keystroke -> Double,
        handoff_decky -> Nullable<Text>,
        shared_tokens -> Text,
        created_at -> Timestamp,
        handoff_corroboration -> Nullable<Text>,
        handoff_deckies -> Text,
    }
}

diesel::joinable!(attacker_identities -> campaigns (campaign_id));
diesel::joinable!(identity_evidence -> attacker_identities (identity_uuid));
diesel::joinable!(campaign_evidence -> campaigns (campaign_uuid));
diesel::allow_tables_to_appear_in_same_query!(
    campaigns,
    attacker_identities,
    identity_evidence,
    campaign_evidence,
    observation_cluster_keys,
    identity_cluster_keys
);

/// The clusterer's view of intake's `attackers` table: only the columns it reads or writes
/// (spec §2.1, plus `payload_hashes` / `c2_endpoints` added by the clustering migration).
/// Kept in its own module so it never collides with intake's full declaration.
pub mod observation_view {
    diesel::table! {
        attackers (uuid) {
            uuid -> Text,
            ip -> Text,
            identity_id -> Nullable<Text>,
            first_seen -> Timestamp,
            last_seen -> Timestamp,
            event_count -> BigInt,
            fingerprints -> Nullable<Text>,
            asn -> Nullable<BigInt>,
            payload_hashes -> Nullable<Text>,
            c2_endpoints -> Nullable<Text>,
            updated_at -> Timestamp,
            /// `updated_at` as the identity clusterer last processed it (dirty while different).
            clustered_at -> Nullable<Timestamp>,
        }
    }

    use super::{attacker_identities, observation_cluster_keys};

    diesel::allow_tables_to_appear_in_same_query!(attackers, attacker_identities);
    diesel::allow_tables_to_appear_in_same_query!(attackers, observation_cluster_keys);
}

//! MailDripper table (realism spec §1.2).

diesel::table! {
    /// One row per email attempt (failures included). `mail_decky_uuid` is a union-view id.
    orchestrator_emails (uuid) {
        uuid -> Text,
        ts -> Timestamp,
        mail_decky_uuid -> Text,
        thread_id -> Text,
        /// With angle brackets; `""` when generation failed.
        message_id -> Text,
        in_reply_to -> Nullable<Text>,
        sender_email -> Text,
        recipient_email -> Text,
        subject -> Text,
        language -> Text,
        eml_path -> Text,
        success -> Bool,
        /// JSON object text.
        payload -> Text,
    }
}

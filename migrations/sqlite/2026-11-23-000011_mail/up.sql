-- MailDripper attempts (realism.md 1.2): one row per email attempt, failures included.
-- No foreign key on mail_decky_uuid: it holds a union-view id and rows outlive deckies.
CREATE TABLE orchestrator_emails (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    ts TIMESTAMP NOT NULL,
    mail_decky_uuid VARCHAR(255) NOT NULL CHECK (length(mail_decky_uuid) <= 255),
    thread_id VARCHAR(64) NOT NULL CHECK (length(thread_id) <= 64),
    message_id VARCHAR(255) NOT NULL DEFAULT '' CHECK (length(message_id) <= 255),
    in_reply_to VARCHAR(255) CHECK (length(in_reply_to) <= 255),
    sender_email VARCHAR(255) NOT NULL CHECK (length(sender_email) <= 255),
    recipient_email VARCHAR(255) NOT NULL CHECK (length(recipient_email) <= 255),
    subject VARCHAR(512) NOT NULL DEFAULT '' CHECK (length(subject) <= 512),
    language VARCHAR(8) NOT NULL DEFAULT 'en' CHECK (length(language) <= 8),
    eml_path VARCHAR(1024) NOT NULL DEFAULT '' CHECK (length(eml_path) <= 1024),
    success BOOLEAN NOT NULL DEFAULT 0,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_orchestrator_emails_ts ON orchestrator_emails (ts);
CREATE INDEX ix_orchestrator_emails_mail ON orchestrator_emails (mail_decky_uuid);
CREATE INDEX ix_orchestrator_emails_thread ON orchestrator_emails (thread_id);
CREATE INDEX ix_orchestrator_emails_sender ON orchestrator_emails (sender_email);
CREATE INDEX ix_orchestrator_emails_recipient ON orchestrator_emails (recipient_email);
CREATE INDEX ix_orchestrator_emails_success ON orchestrator_emails (success);
CREATE INDEX ix_orchestrator_emails_mail_ts ON orchestrator_emails (mail_decky_uuid, ts);

//! MailDripper repository (realism spec §1.6, email half): record, list, count, thread lookup,
//! failure count, prune.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::mail::{NewOrchestratorEmail, OrchestratorEmail};
use crate::db::schema::orchestrator_emails;
use crate::db::{new_uuid, now_utc, Db, DbError};
use crate::db_run;

/// At most `max` characters, NUL removed (PostgreSQL refuses NUL in text).
fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| *c != '\0').take(max).collect()
}

/// Record one attempt (`ts` = now); returns its uuid. Every column is clipped to its width.
pub async fn record_orchestrator_email(
    db: &Db,
    new: NewOrchestratorEmail,
) -> Result<String, DbError> {
    let payload = serde_json::to_string(&new.payload)?.replace("\\u0000", "");
    let language = clip(&new.language, 8);
    let row = OrchestratorEmail {
        uuid: new_uuid(),
        ts: now_utc(),
        mail_decky_uuid: clip(&new.mail_decky_uuid, 255),
        thread_id: clip(&new.thread_id, 64),
        message_id: clip(&new.message_id, 255),
        in_reply_to: new.in_reply_to.as_deref().map(|s| clip(s, 255)),
        sender_email: clip(&new.sender_email, 255),
        recipient_email: clip(&new.recipient_email, 255),
        subject: clip(&new.subject, 512),
        language: if language.is_empty() {
            "en".into()
        } else {
            language
        },
        eml_path: clip(&new.eml_path, 1024),
        success: new.success,
        payload,
    };
    db_run!(db, |c| diesel::insert_into(orchestrator_emails::table)
        .values(&row)
        .execute(c)
        .await)?;
    Ok(row.uuid)
}

/// Filters of email listings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmailFilter {
    pub mail_decky_uuid: Option<String>,
    pub thread_id: Option<String>,
    pub since: Option<NaiveDateTime>,
}

/// Emails newest first.
pub async fn list_orchestrator_emails(
    db: &Db,
    limit: i64,
    offset: i64,
    filter: &EmailFilter,
) -> Result<Vec<OrchestratorEmail>, DbError> {
    use orchestrator_emails::dsl as e;
    let f = filter.clone();
    Ok(db_run!(db, |c| {
        let mut q = orchestrator_emails::table
            .select(OrchestratorEmail::as_select())
            .order((e::ts.desc(), e::uuid.desc()))
            .limit(limit.max(0))
            .offset(offset.max(0))
            .into_boxed();
        if let Some(m) = &f.mail_decky_uuid {
            q = q.filter(e::mail_decky_uuid.eq(m.clone()));
        }
        if let Some(t) = &f.thread_id {
            q = q.filter(e::thread_id.eq(t.clone()));
        }
        if let Some(s) = f.since {
            q = q.filter(e::ts.ge(s));
        }
        q.load(c).await
    })?)
}

/// Number of emails, optionally of one mail decky.
pub async fn count_orchestrator_emails(
    db: &Db,
    mail_decky_uuid: Option<&str>,
) -> Result<i64, DbError> {
    use orchestrator_emails::dsl as e;
    let m = mail_decky_uuid.map(str::to_owned);
    Ok(db_run!(db, |c| {
        let mut q = orchestrator_emails::table.count().into_boxed();
        if let Some(m) = &m {
            q = q.filter(e::mail_decky_uuid.eq(m.clone()));
        }
        q.get_result(c).await
    })?)
}

/// Failed emails since `since`.
pub async fn count_email_failures(db: &Db, since: NaiveDateTime) -> Result<i64, DbError> {
    use orchestrator_emails::dsl as e;
    Ok(db_run!(db, |c| orchestrator_emails::table
        .filter(e::success.eq(false))
        .filter(e::ts.ge(since))
        .count()
        .get_result(c)
        .await)?)
}

/// Successful emails on `mail` between `a` and `b` in either direction, newest first.
pub async fn list_orchestrator_email_threads(
    db: &Db,
    mail: &str,
    a: &str,
    b: &str,
    limit: i64,
) -> Result<Vec<OrchestratorEmail>, DbError> {
    use orchestrator_emails::dsl as e;
    let (mail, a, b) = (mail.to_owned(), a.to_owned(), b.to_owned());
    Ok(db_run!(db, |c| orchestrator_emails::table
        .select(OrchestratorEmail::as_select())
        .filter(e::mail_decky_uuid.eq(&mail))
        .filter(e::success.eq(true))
        .filter(
            (e::sender_email.eq(&a).and(e::recipient_email.eq(&b)))
                .or(e::sender_email.eq(&b).and(e::recipient_email.eq(&a)))
        )
        .order((e::ts.desc(), e::uuid.desc()))
        .limit(limit.max(0))
        .load(c)
        .await)?)
}

/// Keep the newest `per_decky_cap` emails of every mail decky; returns rows deleted.
pub async fn prune_orchestrator_emails(db: &Db, per_decky_cap: i64) -> Result<usize, DbError> {
    prune_per_group!(
        db,
        orchestrator_emails,
        mail_decky_uuid,
        ts,
        uuid,
        per_decky_cap.max(0)
    )
}

//! Users, revoked tokens and state rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{revoked_tokens, state, users};
use crate::db::JsonText;

/// Role name of administrators.
pub const ROLE_ADMIN: &str = "admin";
/// Role name of read-only users (the default).
pub const ROLE_VIEWER: &str = "viewer";

/// A stored user. `password_hash` must never be logged or returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct User {
    pub uuid: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub must_change_password: bool,
    pub tokens_valid_from: Option<NaiveDateTime>,
}

impl User {
    /// Whether the user has the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.role == ROLE_ADMIN
    }
}

/// A user to insert. `tokens_valid_from` starts NULL.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub uuid: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub must_change_password: bool,
}

impl NewUser {
    /// A new user with a fresh UUIDv4.
    pub fn new(
        username: impl Into<String>,
        password_hash: impl Into<String>,
        role: impl Into<String>,
        must_change_password: bool,
    ) -> Self {
        NewUser {
            uuid: crate::db::new_uuid(),
            username: username.into(),
            password_hash: password_hash.into(),
            role: role.into(),
            must_change_password,
        }
    }
}

/// A revoked JWT id.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = revoked_tokens)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct RevokedToken {
    pub jti: String,
    pub user_uuid: String,
    pub expires_at: NaiveDateTime,
    pub revoked_at: NaiveDateTime,
}

/// A `state` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = state)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct StateEntry {
    pub key: String,
    pub value: JsonText,
}

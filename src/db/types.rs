//! Portable column helpers shared by every domain.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use serde::{Deserialize, Serialize};

/// The current UTC time as a naive timestamp truncated to microseconds, so a value written to
/// SQLite (which would keep nanoseconds) compares equal to the same value read back from
/// PostgreSQL (pitfall 7). Set timestamps from Rust with this, never with SQL `now()`.
pub fn now_utc() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// A fresh UUIDv4 in its canonical hyphenated lowercase text form (UUID columns are `Text`).
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A JSON value stored in a `Text` column (portable; `Jsonb` is not). Use it as the Rust type of
/// any `Text` column holding JSON: `#[diesel(sql_type = Text)]`-compatible on both backends.
/// Reading text that is not valid JSON fails the row with a deserialization error.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct JsonText(pub serde_json::Value);

impl JsonText {
    /// Serializes any `Serialize` value.
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_value(value).map(JsonText)
    }

    /// Deserializes into a typed value.
    pub fn to_typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.0)
    }

    /// The inner value.
    pub fn into_inner(self) -> serde_json::Value {
        self.0
    }
}

impl From<serde_json::Value> for JsonText {
    fn from(v: serde_json::Value) -> Self {
        JsonText(v)
    }
}

impl From<JsonText> for serde_json::Value {
    fn from(v: JsonText) -> Self {
        v.0
    }
}

impl<DB> FromSql<Text, DB> for JsonText
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
        Ok(JsonText(serde_json::from_str(&text)?))
    }
}

impl ToSql<Text, Sqlite> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl ToSql<Text, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        serde_json::to_writer(out, &self.0)?;
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn now_utc_has_at_most_microseconds() {
        for _ in 0..100 {
            assert_eq!(now_utc().nanosecond() % 1000, 0);
        }
    }

    #[test]
    fn new_uuid_is_canonical_v4() {
        let u = new_uuid();
        let parsed = uuid::Uuid::parse_str(&u).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.to_string(), u);
    }

    #[test]
    fn json_text_typed_round_trip() {
        let j = JsonText::from_serialize(&serde_json::json!({"position": 42})).unwrap();
        #[derive(Deserialize)]
        struct Pos {
            position: u64,
        }
        assert_eq!(j.to_typed::<Pos>().unwrap().position, 42);
    }
}

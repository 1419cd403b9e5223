//! One diesel schema serving both backends (portable SQL types only: `BigInt`, `Text`, `Bool`,
//! `Timestamp`, `Integer`, `Double`, `Nullable<_>`). One file per domain; every table is
//! re-exported here, so `crate::db::schema::users` works whatever file declares it.
//!
//! A table that joins a table of another file needs
//! `diesel::allow_tables_to_appear_in_same_query!(a, b);` in the file declaring the later one.

pub mod canary;
pub mod clustering;
pub mod core;
pub mod fleet;
pub mod intake;
pub mod intel;
pub mod mail;
pub mod realism;
pub mod ttp;
pub mod webhooks;

pub use self::canary::*;
#[allow(unused_imports)] // empty until the clustering tables land
pub use self::clustering::*;
pub use self::core::*;
pub use self::fleet::*;
#[allow(unused_imports)] // empty until the intake tables land
pub use self::intake::*;
pub use self::intel::*;
pub use self::mail::*;
pub use self::realism::*;
pub use self::ttp::*;
pub use self::webhooks::*;

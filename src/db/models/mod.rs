//! Row types (`Queryable`/`Selectable`) and insertables, one file per domain.
//! Every `Selectable` carries `check_for_backend(Sqlite, Pg)` so a column/type mismatch with
//! either backend is a compile error.

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
pub use self::realism::*;
pub use self::webhooks::*;

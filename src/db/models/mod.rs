//! Row types (`Queryable`/`Selectable`) and insertables, one file per domain.
//! Every `Selectable` carries `check_for_backend(Sqlite, Pg)` so a column/type mismatch with
//! either backend is a compile error.

pub mod clustering;
pub mod core;
pub mod fleet;
pub mod intake;
pub mod intel;

#[allow(unused_imports)] // empty until the clustering tables land
pub use self::clustering::*;
pub use self::core::*;
#[allow(unused_imports)] // empty until the fleet tables land
pub use self::fleet::*;
#[allow(unused_imports)] // empty until the intake tables land
pub use self::intake::*;
#[allow(unused_imports)] // empty until the intel tables land
pub use self::intel::*;

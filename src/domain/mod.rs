//! Pure logic: no I/O, no actix, no diesel. Everything here is unit-tested on plain data.
pub mod canary;
pub mod clustering;
pub mod fleet;
pub mod intel;
pub mod mail;
pub mod mutation;
pub mod par;
pub mod realism;
pub mod syslog;
pub mod ttp;
pub mod webhook;

//! decnetd: the mothership daemon of the DECNET honeypot deception network.
pub mod db;
pub mod docker;
pub mod domain;

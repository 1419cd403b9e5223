//! decnetd: the mothership daemon of the DECNET honeypot deception network.
pub mod actors;
pub mod docker;
pub mod domain;

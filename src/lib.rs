//! decnetd: the mothership daemon of the DECNET honeypot deception network.
pub mod docker;
pub mod domain;
pub mod intel;

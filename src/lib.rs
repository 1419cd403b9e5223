//! decnetd: the mothership daemon of the DECNET honeypot deception network.
pub mod actors;
pub mod app;
pub mod canary;
pub mod config;
pub mod db;
pub mod docker;
pub mod domain;
pub mod http;
pub mod intel;
pub mod memory;
pub mod metrics;
pub mod private_fs;
pub mod systemd;
pub mod testkit;

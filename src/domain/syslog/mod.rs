//! syslog (pure logic).

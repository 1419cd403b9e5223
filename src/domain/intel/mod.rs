//! intel (pure logic).

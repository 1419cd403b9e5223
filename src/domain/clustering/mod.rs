//! clustering (pure logic).

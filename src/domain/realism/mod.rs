//! realism (pure logic).

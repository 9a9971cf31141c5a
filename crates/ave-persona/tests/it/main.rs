//! Integration tests of ave-persona.

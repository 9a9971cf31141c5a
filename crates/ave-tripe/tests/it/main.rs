//! Integration tests of `ave-tripe`.

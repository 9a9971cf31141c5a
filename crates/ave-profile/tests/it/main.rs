//! Integration tests of `ave-profile`: each of the original's profile classes, the
//! factory, and property tests of equality, hashing and minimization.

mod kinds;
mod properties;

//! Benchmarks of the pty runner against its peers (not written yet).

fn main() {}

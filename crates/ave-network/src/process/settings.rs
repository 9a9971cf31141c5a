//! What a child starts with: the descriptors it keeps ([`FdSet`]), its settings, and the
//! kernel's view of its name.

use std::{
    collections::BTreeSet,
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use crate::process::Signal;

/// The longest process name the kernel keeps (`/proc/<pid>/comm`), in bytes.
pub const MAX_KERNEL_NAME: usize = 15;

/// A set of descriptors to keep open in a child ([`Target::close_fds`](crate::process::Target::close_fds)); 0, 1 and 2 are
/// always kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdSet(BTreeSet<i32>);

impl FdSet {
    /// An empty set.
    pub fn new() -> FdSet {
        FdSet::default()
    }

    /// Adds a descriptor (by number: the value that owns it must live in the child, e.g.
    /// captured by the target).
    pub fn insert(&mut self, fd: impl AsFd) {
        self.0.insert(fd.as_fd().as_raw_fd());
    }

    /// The set with `fd` added.
    #[must_use]
    pub fn with(mut self, fd: impl AsFd) -> FdSet {
        self.insert(fd);
        self
    }

    /// Adds every descriptor of another set.
    pub fn extend(&mut self, other: &FdSet) {
        self.0.extend(other.0.iter().copied());
    }

    /// Whether the set holds `fd`.
    pub fn contains(&self, fd: impl AsFd) -> bool {
        self.0.contains(&fd.as_fd().as_raw_fd())
    }

    /// How many descriptors the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn numbers(&self) -> &BTreeSet<i32> {
        &self.0
    }
}

/// The settings a child starts with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) logging: bool,
    pub(crate) death_signal: Option<Signal>,
    pub(crate) keep: FdSet,
    pub(crate) sync_timeout: Duration,
    pub(crate) allow_threads: bool,
}

/// The kernel's view of a name: at most 15 bytes, cut at a character boundary.
pub(crate) fn kernel_name(name: &str) -> &str {
    if name.len() <= MAX_KERNEL_NAME {
        return name;
    }
    let mut end = MAX_KERNEL_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

//! The one poison-tolerant lock of the crate.
//!
//! A panic while a lock is held poisons it; every state behind this crate's locks stays
//! consistent at any point a panic can happen (plain assignments, pushes, takes), so the
//! guard is taken back instead of spreading the panic to every later user.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking the guard back from a poisoned lock.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_back() {
        let mutex = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let _guard = lock(&mutex);
            panic!("poison it");
        });
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);
    }
}

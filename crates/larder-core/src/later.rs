//! [`Later`]: a value computed on a thread of its own while the process goes on, for
//! every part of the process that needs it: each waits for it and gets a copy. `larder
//! cargo` computes the compiler's identity, the seed's guard and the remote seed's
//! context this way, beside cargo's start or run, and each once.

use std::sync::{Arc, OnceLock};

/// A value being computed on a thread of its own (or known already).
#[derive(Debug, Clone)]
pub struct Later<T>(Arc<OnceLock<Option<T>>>);

impl<T: Clone + Send + Sync + 'static> Later<T> {
    /// Starts computing `f()` on a new thread.
    pub fn start(f: impl FnOnce() -> T + Send + 'static) -> Later<T> {
        let cell = Arc::new(OnceLock::new());
        let answer = Answer(Arc::clone(&cell));
        std::thread::spawn(move || {
            let _ = answer.0.set(Some(f()));
        });
        Later(cell)
    }

    /// A value known already.
    pub fn known(value: T) -> Later<T> {
        Later(Arc::new(OnceLock::from(Some(value))))
    }

    /// The value, once computed; `None` if its thread panicked.
    pub fn wait(&self) -> Option<T> {
        self.0.wait().clone()
    }

    /// The value, if computed already.
    pub fn get(&self) -> Option<T> {
        self.0.get().cloned().flatten()
    }
}

/// The thread's side: whatever happens on the thread (a panic included), the waiters get
/// an answer.
struct Answer<T>(Arc<OnceLock<Option<T>>>);

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        let _ = self.0.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_waiter_gets_the_value_and_a_panic_is_an_answer() {
        let later = Later::start(|| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            7
        });
        let other = later.clone();
        let t = std::thread::spawn(move || other.wait());
        assert_eq!(later.wait(), Some(7));
        assert_eq!(t.join().unwrap(), Some(7));
        assert_eq!(later.get(), Some(7));
        assert_eq!(Later::known(3).get(), Some(3));

        let failed: Later<u8> = Later::start(|| panic!("no answer"));
        assert_eq!(failed.wait(), None);
    }
}

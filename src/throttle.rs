//! Warnings a flood cannot multiply: an event that may come thousands of times a second (a
//! connection shed, a request refused) is logged at most once a second, with the count since.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events and says when one should be logged.
#[derive(Default)]
pub struct EverySecond(Mutex<(Option<Instant>, u64)>);

impl EverySecond {
    /// Counts an event; `Some(n)` (the events since the last log, this one included) when a
    /// second has passed since the last log, else `None`.
    pub fn tick(&self) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state.1 += 1;
        if state.0.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        let count = state.1;
        *state = (Some(Instant::now()), 0);
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_and_the_rest_of_the_second_counted() {
        let t = EverySecond::default();
        assert_eq!(t.tick(), Some(1));
        assert_eq!((t.tick(), t.tick()), (None, None));
        std::thread::sleep(Duration::from_millis(1050));
        assert_eq!(t.tick(), Some(3), "the two held back and this one");
    }
}

//! A waker that remembers it was woken. A connection's watchdog polls its timers with it,
//! and polls them again only when one of them woke the task: the connection's own wakes
//! (two or three per request, its sockets) then cost the timers nothing, where polling
//! every timer at every wake cost about 2,000 instructions per request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

#[derive(Debug)]
pub struct Remembering {
    woken: AtomicBool,
    /// The task to wake in turn.
    task: Mutex<Option<Waker>>,
}

impl Remembering {
    /// Starts woken, so that what it is given is polled (and registered) once.
    pub fn new() -> Arc<Self> {
        Arc::new(Remembering {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        })
    }

    /// Whether it was woken since the last call (and forget it); `task` is the waker of
    /// the task polling now, woken in turn from here on.
    pub fn take(&self, task: &Waker) -> bool {
        if let Ok(mut stored) = self.task.lock() {
            if !stored.as_ref().is_some_and(|w| w.will_wake(task)) {
                *stored = Some(task.clone());
            }
        }
        self.woken.swap(false, Ordering::AcqRel)
    }

    /// Poll what it is given again at the next poll.
    pub fn arm(&self) {
        self.woken.store(true, Ordering::Release);
    }
}

impl Wake for Remembering {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().ok().and_then(|t| t.clone());
        if let Some(task) = task {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn it_remembers_a_wake_once_and_passes_it_on() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let remembering = Remembering::new();
        assert!(remembering.take(&task), "woken at first");
        assert!(!remembering.take(&task));
        Waker::from(remembering.clone()).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(remembering.take(&task));
        assert!(!remembering.take(&task));
        remembering.arm();
        assert!(remembering.take(&task));
    }
}

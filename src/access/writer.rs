//! The access log's writer: a thread of its own behind a bounded buffer, so a slow or
//! failing disk never holds a request. The request path only appends to the buffer
//! (no wake-up per line: a thread switch per request would cost more than the line);
//! the writer takes the buffer whole every `FLUSH` (sooner when it fills half-way), and
//! writes its lines in one go. The file is rotated by size and reopened on request
//! (SIGUSR1, after logrotate moved it).

use super::entry::Entry;
use crate::config::{AccessLogDestination, AccessLogFormat, AccessLogSettings};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a line may wait in the buffer, at most (nginx's `flush`). Short, so each
/// batch is small: a long one delays the requests behind it on a busy core
/// (loadtest/results/observability.md: p99 7.5 ms at 100 ms, 4.1 ms at 20 ms).
const FLUSH: Duration = Duration::from_millis(20);

/// What the request path and the writer share.
struct Shared {
    entries: Mutex<Vec<Entry>>,
    /// Wakes the writer early: the buffer is half full, or the queue is closing.
    wake: Condvar,
    capacity: usize,
    reopen: AtomicBool,
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A writer that panicked mid-batch leaves the entries usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request path's end of the buffer. Dropping the last one ends the writer after it
/// has written what was queued.
pub struct Queue {
    shared: Arc<Shared>,
}

impl Queue {
    /// Start the writer for `settings`. The file is opened on the writer's thread: one
    /// that cannot be opened is reported there and its lines are counted as dropped.
    pub fn start(settings: &AccessLogSettings) -> io::Result<Queue> {
        let shared = Arc::new(Shared {
            entries: Mutex::new(Vec::with_capacity(settings.buffer.min(4096))),
            wake: Condvar::new(),
            capacity: settings.buffer,
            reopen: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let writer = Writer {
            destination: settings.destination.clone(),
            format: settings.format,
            max_size: settings.max_size,
            keep: settings.keep,
            out: None,
            written: 0,
        };
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("banyan-access-log".into())
            .spawn(move || writer.run(&for_writer))?;
        Ok(Queue { shared })
    }

    /// Queue an entry; when the buffer is full the entry is dropped and counted.
    pub fn push(&self, entry: Entry) {
        let mut entries = self.shared.lock();
        if entries.len() >= self.shared.capacity {
            drop(entries);
            crate::metrics::access_log_dropped("queue_full");
            return;
        }
        entries.push(entry);
        let half = entries.len() == self.shared.capacity / 2;
        drop(entries);
        if half {
            self.shared.wake.notify_one();
        }
    }

    /// Close and open the file again (logrotate moved it away).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

enum Out {
    Stdout(io::Stdout),
    File(File),
}

impl Out {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Stdout(s) => {
                let mut lock = s.lock();
                lock.write_all(bytes)?;
                lock.flush()
            }
            Out::File(f) => f.write_all(bytes),
        }
    }
}

struct Writer {
    destination: AccessLogDestination,
    format: AccessLogFormat,
    max_size: Option<u64>,
    keep: usize,
    out: Option<Out>,
    /// Bytes in the current file.
    written: u64,
}

impl Writer {
    fn run(mut self, shared: &Shared) {
        let mut batch = Vec::new();
        let mut lines = Vec::with_capacity(64 * 1024);
        loop {
            {
                let mut entries = shared.lock();
                if entries.is_empty() && !shared.closed.load(Ordering::Relaxed) {
                    entries = shared
                        .wake
                        .wait_timeout(entries, FLUSH)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                // The request path gets the empty (but allocated) buffer back.
                std::mem::swap(&mut *entries, &mut batch);
            }
            if shared.reopen.swap(false, Ordering::Relaxed) {
                self.out = None;
            }
            if batch.is_empty() {
                if shared.closed.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            let count = batch.len() as u64;
            for entry in batch.drain(..) {
                self.format(&entry, &mut lines);
            }
            self.write(&lines, count);
            lines.clear();
        }
    }

    fn format(&self, entry: &Entry, out: &mut Vec<u8>) {
        match self.format {
            AccessLogFormat::Json => entry.write_json(out),
            AccessLogFormat::Combined => entry.write_combined(out),
        }
    }

    fn write(&mut self, bytes: &[u8], lines: u64) {
        if self.max_size.is_some_and(|max| self.written >= max) {
            self.rotate();
        }
        let Some(out) = self.open() else {
            crate::metrics::access_log_dropped_n("write_failed", lines);
            return;
        };
        match out.write_all(bytes) {
            Ok(()) => {
                self.written += bytes.len() as u64;
                crate::metrics::access_log_written(lines);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the access log");
                crate::metrics::access_log_dropped_n("write_failed", lines);
                // Open it again for the next batch (the disk may have been freed).
                self.out = None;
            }
        }
    }

    fn open(&mut self) -> Option<&mut Out> {
        if self.out.is_none() {
            self.out = match &self.destination {
                AccessLogDestination::Stdout => Some(Out::Stdout(io::stdout())),
                AccessLogDestination::File(path) => match append(path) {
                    Ok(file) => {
                        self.written = file.metadata().map_or(0, |m| m.len());
                        Some(Out::File(file))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, path = %path.display(), "cannot open the access log");
                        None
                    }
                },
            };
        }
        self.out.as_mut()
    }

    /// `access.log` becomes `access.log.1`, `.1` becomes `.2`, and so on to `keep`.
    fn rotate(&mut self) {
        let AccessLogDestination::File(path) = &self.destination else {
            return;
        };
        self.out = None;
        if let Err(e) = shift(path, self.keep) {
            tracing::warn!(error = %e, path = %path.display(), "cannot rotate the access log");
        }
        self.written = 0;
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn shift(path: &Path, keep: usize) -> io::Result<()> {
    let _ = std::fs::remove_file(numbered(path, keep));
    for n in (1..keep).rev() {
        let from = numbered(path, n);
        if from.exists() {
            std::fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    std::fs::rename(path, numbered(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_and_counts_rather_than_waits() {
        // No writer thread: nothing drains the buffer.
        let queue = Queue {
            shared: Arc::new(Shared {
                entries: Mutex::new(Vec::new()),
                wake: Condvar::new(),
                capacity: 4,
                reopen: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        };
        let dropped = || {
            crate::metrics::metrics()
                .access_log_dropped_total
                .with_label_values(&["queue_full"])
                .get()
        };
        let before = dropped();
        for _ in 0..7 {
            queue.push(super::super::entry::tests::entry());
        }
        assert_eq!(queue.shared.lock().len(), 4);
        assert_eq!(dropped() - before, 3);
    }

    #[test]
    fn rotation_shifts_and_keeps_at_most_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        for round in 0..4 {
            std::fs::write(&log, format!("round {round}\n")).unwrap();
            shift(&log, 2).unwrap();
        }
        assert!(!log.exists());
        assert_eq!(
            std::fs::read_to_string(numbered(&log, 1)).unwrap(),
            "round 3\n"
        );
        assert_eq!(
            std::fs::read_to_string(numbered(&log, 2)).unwrap(),
            "round 2\n"
        );
        assert!(!numbered(&log, 3).exists());
    }
}

//! The capture writer: one thread behind a bounded queue (a full queue drops the record
//! and counts it: the request path never waits on the disk), writing gzip-compressed JSON
//! lines. A file is rotated when it reaches `max_file_size` or `max_file_age`; past
//! `max_total` in the directory, the oldest capture files go. The file being written is
//! flushed at most every half second, so a reader sees every record up to the last flush.

use super::record::Exchange;
use super::record::Record;
use crate::config::CaptureSettings;
use crate::store::redact::{RedactRules, Redactor};
use flate2::write::GzEncoder;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// How a capture file is named: `capture-20261128T043456.789Z-<pid>-<n>.jsonl.gz`, in
/// time order by name.
const PREFIX: &str = "capture-";
const SUFFIX: &str = ".jsonl.gz";

/// How long a record may wait before its batch is flushed.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// The sending side; the thread ends (finishing its file) when the last one is dropped.
pub struct Writer {
    tx: SyncSender<Exchange>,
}

impl Writer {
    /// Start a writer into `settings.dir` (created if missing), redacting by `redact`.
    pub fn start(settings: &CaptureSettings, redact: &RedactRules) -> std::io::Result<Writer> {
        std::fs::create_dir_all(&settings.dir)?;
        let (tx, rx) = sync_channel(settings.queue);
        let settings = settings.clone();
        let redactor = Redactor::new(redact);
        std::thread::Builder::new()
            .name("banyan-capture".into())
            .spawn(move || Files::new(settings).run(&rx, &redactor))?;
        Ok(Writer { tx })
    }

    /// Queue an exchange; false (and counted) when the queue is full.
    pub fn submit(&self, exchange: Exchange) -> bool {
        match self.tx.try_send(exchange) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                crate::metrics::capture_dropped("queue_full");
                false
            }
        }
    }
}

struct Open {
    encoder: GzEncoder<BufWriter<File>>,
    path: PathBuf,
    opened: Instant,
}

/// The writer thread's state.
struct Files {
    settings: CaptureSettings,
    open: Option<Open>,
    /// After a failed open, the next attempt waits until then.
    retry_at: Option<Instant>,
    dirty: bool,
    /// Files opened so far: names stay apart within a millisecond.
    opened: u64,
    flushed: Instant,
    /// Bytes written (before compression) since the last flush.
    unflushed: u64,
}

impl Files {
    fn new(settings: CaptureSettings) -> Self {
        Files {
            settings,
            open: None,
            retry_at: None,
            dirty: false,
            opened: 0,
            flushed: Instant::now(),
            unflushed: 0,
        }
    }

    fn run(mut self, rx: &Receiver<Exchange>, redactor: &Redactor) {
        loop {
            match rx.recv_timeout(FLUSH_EVERY) {
                Ok(exchange) => {
                    self.write(&exchange.route, &Record::of(&exchange, redactor));
                    // The rest of what is queued, as one batch.
                    while let Ok(exchange) = rx.try_recv() {
                        self.write(&exchange.route, &Record::of(&exchange, redactor));
                    }
                    // A flush per batch cost a write and a deflate block per record
                    // at a steady trickle: one per FLUSH_EVERY instead, or sooner when
                    // enough is held back that the file's size on disk (what rotation
                    // reads) would lag far behind.
                    let hold = (self.settings.max_file_size / 4).min(64 * 1024);
                    if self.flushed.elapsed() >= FLUSH_EVERY || self.unflushed >= hold {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.flush(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.rotate_if_due();
        }
        self.close();
    }

    fn write(&mut self, route: &str, record: &Record) {
        let Some(open) = self.file() else {
            crate::metrics::capture_dropped("write_failed");
            return;
        };
        let line = serde_json::to_vec(record).map_err(std::io::Error::other);
        let written = line.and_then(|mut line| {
            line.push(b'\n');
            open.encoder.write_all(&line).map(|()| line.len() as u64)
        });
        match written {
            Ok(bytes) => {
                self.dirty = true;
                self.unflushed += bytes;
                crate::metrics::capture_written(route);
            }
            Err(e) => self.failed(&e),
        }
    }

    fn flush(&mut self) {
        self.flushed = Instant::now();
        self.unflushed = 0;
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(open) = self.open.as_mut() {
            // A sync flush: everything so far decompresses from the file as it is.
            if let Err(e) = open.encoder.flush() {
                self.failed(&e);
            }
        }
    }

    /// The open file, opening a new one when there is none (not sooner than a second
    /// after a failed open).
    fn file(&mut self) -> Option<&mut Open> {
        if self.open.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            self.opened += 1;
            let path = self.settings.dir.join(format!(
                "{PREFIX}{}-{}-{}{SUFFIX}",
                stamp(crate::clock::now_unix()),
                std::process::id(),
                self.opened
            ));
            match File::create(&path) {
                Ok(file) => {
                    self.retry_at = None;
                    self.open = Some(Open {
                        encoder: GzEncoder::new(BufWriter::new(file), flate2::Compression::fast()),
                        path,
                        opened: Instant::now(),
                    });
                    self.enforce_total();
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open a capture file");
                    self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        self.open.as_mut()
    }

    fn failed(&mut self, e: &std::io::Error) {
        if let Some(open) = self.open.take() {
            tracing::warn!(path = %open.path.display(), error = %e, "capture file write failed; a new file is opened for the next record");
        }
        self.retry_at = Some(Instant::now() + Duration::from_secs(1));
    }

    fn rotate_if_due(&mut self) {
        let Some(open) = self.open.as_ref() else {
            return;
        };
        let size = std::fs::metadata(&open.path).map_or(0, |m| m.len());
        if size >= self.settings.max_file_size
            || open.opened.elapsed() >= self.settings.max_file_age
        {
            self.close();
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            let finished = open.encoder.finish().and_then(|mut w| w.flush());
            if let Err(e) = finished {
                tracing::warn!(path = %open.path.display(), error = %e, "cannot finish a capture file");
            }
        }
    }

    /// Remove the oldest capture files while the directory holds more than `max_total`.
    fn enforce_total(&self) {
        let current = self.open.as_ref().map(|o| o.path.clone());
        let mut files = capture_files(&self.settings.dir);
        let mut total: u64 = files.iter().map(|(_, size)| size).sum();
        files.sort();
        for (path, size) in files {
            if total <= self.settings.max_total {
                break;
            }
            if Some(&path) == current.as_ref() {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(size);
            }
        }
    }
}

/// The capture files of a directory, with their sizes.
pub fn capture_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(PREFIX) && name.ends_with(SUFFIX)
        })
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .collect()
}

/// `20261128T043456.789Z`: a time that sorts as text.
fn stamp(unix: f64) -> String {
    super::record::rfc3339(unix).replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(i: usize) -> Exchange {
        Exchange {
            route: "r".into(),
            at: i as f64,
            request: crate::capture::RequestHead {
                method: http::Method::GET,
                uri: format!("/item/{i}").parse().unwrap(),
                headers: http::HeaderMap::new(),
            },
            request_body: bytes::Bytes::new(),
            status: http::StatusCode::OK,
            response_headers: http::HeaderMap::new(),
            // Incompressible enough that files fill.
            response_body: format!("{:x}", xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes()))
                .repeat(8)
                .into(),
            latency: Duration::from_millis(1),
        }
    }

    fn record(i: usize) -> Record {
        Record::of(&exchange(i), &Redactor::new(&RedactRules::default()))
    }

    fn settings(dir: &Path, max_file_size: u64, max_total: u64) -> CaptureSettings {
        CaptureSettings {
            dir: dir.to_path_buf(),
            max_file_size,
            max_file_age: Duration::from_secs(3600),
            max_total,
            queue: 4096,
        }
    }

    #[test]
    fn records_are_readable_while_written_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(
            &settings(dir.path(), 1 << 30, 1 << 30),
            &RedactRules::default(),
        )
        .unwrap();
        for i in 0..50 {
            assert!(writer.submit(exchange(i)));
        }
        // Flushed within a batch's wait: readable while the file is still open.
        let mut seen = 0;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let files = capture_files(dir.path());
            seen = files
                .iter()
                .map(|(p, _)| crate::capture::read::read(p).unwrap().len())
                .sum();
            if seen == 50 {
                break;
            }
        }
        assert_eq!(seen, 50);
        drop(writer);
        std::thread::sleep(Duration::from_millis(700));
        let files = capture_files(dir.path());
        let all: Vec<Record> = files
            .iter()
            .flat_map(|(p, _)| crate::capture::read::read(p).unwrap())
            .collect();
        assert_eq!(all.len(), 50);
        assert_eq!(all[7], record(7));
    }

    #[test]
    fn files_rotate_by_size_and_the_total_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(
            &settings(dir.path(), 4096, 16 * 1024),
            &RedactRules::default(),
        )
        .unwrap();
        for round in 0..20 {
            for i in 0..40 {
                writer.submit(exchange(round * 40 + i));
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        drop(writer);
        std::thread::sleep(Duration::from_millis(700));
        let files = capture_files(dir.path());
        assert!(files.len() >= 2, "rotated: {files:?}");
        let total: u64 = files.iter().map(|(_, s)| s).sum();
        // The cap holds but for the file being written when it was enforced.
        assert!(total <= 16 * 1024 + 8 * 1024, "{total} bytes in {files:?}");
        for (path, _) in &files {
            crate::capture::read::read(path).unwrap();
        }
    }
}

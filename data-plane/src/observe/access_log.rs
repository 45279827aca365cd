//! The access log: one JSON line per request, written when its answer is
//! finished (so status, bytes and durations are final), to stdout or a file
//! (`--access-log`).
//!
//! Each thread that logs encodes its lines into a buffer of its own; a
//! writer thread takes the buffers' contents every [`BATCH_WINDOW`] and
//! writes them out. The request path never waits for the disk and, in
//! steady state, neither allocates nor wakes anyone per line: a line is a
//! lock of the thread's own buffer (uncontended but for the writer's swap
//! once a batch) and an append. A line sent as its own allocation through
//! a channel cost ~1,000 instructions more (the allocation, the channel's
//! two ends, and a free on the writer's thread), `bench/observability.sh
//! --callgrind`. When the writer falls behind, a thread's buffer stops at
//! [`MAX_BUFFERED`] and further lines are dropped and counted (`dropped`),
//! never queued without bound. Lines of one thread stay in order; lines of
//! different threads interleave by batch (as nginx's per-worker buffers do).
//!
//! No header value is logged, so credentials cannot leak into the log; the
//! query string is left out for the same reason (keys may travel in it).

use std::cell::RefCell;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How long lines gather before they are written: a line reaches the file
/// at most about this late (nginx's `access_log ... flush=` does the same).
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// A thread's unwritten lines stop here (about 10,000 lines): a writer
/// this far behind is not keeping up, and memory is not the place to wait.
const MAX_BUFFERED: usize = 4 << 20;

/// A drained buffer larger than this goes back to the allocator instead of
/// being kept for the next batch (a burst does not pin its peak).
const KEEP_CAPACITY: usize = 256 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl std::str::FromStr for Destination {
    type Err = String;

    /// `stdout`, or a file path.
    fn from_str(s: &str) -> Result<Destination, String> {
        match s {
            "" => Err("give stdout or a file path".into()),
            "stdout" | "-" => Ok(Destination::Stdout),
            path => Ok(Destination::File(PathBuf::from(path))),
        }
    }
}

pub struct AccessLog {
    shared: Arc<Buffers>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What the logging threads and the writer share.
struct Buffers {
    /// Tells this log's buffers from another's in a thread's list (tests
    /// run several logs in one process).
    id: u64,
    /// Every thread's buffer, in the order the threads first logged.
    all: Mutex<Vec<Buffer>>,
    /// Some buffer went from empty to not: the writer has a batch to take.
    pending: AtomicBool,
    closed: AtomicBool,
    dropped: AtomicU64,
    /// The writer, to wake when `pending` is first set.
    writer: std::sync::OnceLock<std::thread::Thread>,
}

/// One thread's lines not yet written.
type Buffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    /// This thread's buffer in each log it has written to.
    static MINE: RefCell<Vec<(u64, Buffer)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One request, as logged (`access_line` writes it as JSON).
#[derive(Debug)]
pub struct Entry<'a> {
    pub time: SystemTime,
    pub request_id: &'a str,
    pub trace_id: u128,
    pub client_ip: IpAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub route: Option<&'a str>,
    pub upstream: Option<&'a str>,
    /// The target that answered (after retries, the last one tried).
    pub target: Option<&'a str>,
    pub consumer: Option<&'a str>,
    /// From the request head to the end of the answer.
    pub duration: Duration,
    /// From sending upstream to the response head; absent for the proxy's
    /// own answers.
    pub upstream_time: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub config_version: u64,
}

impl AccessLog {
    /// Opens the destination and starts the writer thread.
    pub fn start(dest: &Destination) -> std::io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match dest {
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        AccessLog::to(out)
    }

    fn to(out: Box<dyn Write + Send>) -> std::io::Result<AccessLog> {
        let shared = Arc::new(Buffers {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            all: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            writer: std::sync::OnceLock::new(),
        });
        let theirs = shared.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_batches(&theirs, out))?;
        let _ = shared.writer.set(writer.thread().clone());
        Ok(AccessLog {
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    pub fn write(&self, entry: &Entry<'_>) {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = MINE.with_borrow_mut(|mine| {
            let i = match mine.iter().position(|(id, _)| *id == shared.id) {
                Some(i) => i,
                None => {
                    let b = Arc::new(Mutex::new(Vec::new()));
                    lock(&shared.all).push(b.clone());
                    mine.push((shared.id, b));
                    mine.len() - 1
                }
            };
            let mut lines = lock(&mine[i].1);
            if lines.len() >= MAX_BUFFERED {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let first = lines.is_empty();
            super::access_line::encode(&mut lines, entry);
            first
        });
        // Only the line that starts a thread's batch tells the writer; it
        // is asleep or about to look (the flag is checked before parking).
        if first
            && !shared.pending.swap(true, Ordering::AcqRel)
            && let Some(w) = shared.writer.get()
        {
            w.unpark();
        }
    }

    /// Writes what is buffered and stops the writer (at shutdown, after
    /// the last request, so no batch is lost with the process). Lines
    /// logged after this are dropped and counted.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(w) = self.shared.writer.get() {
            w.unpark();
        }
        let writer = lock(&self.writer).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }

    /// Lines dropped because the writer fell behind (or the log was closed).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a buffer leaves at worst a torn line.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer: asleep while the log is quiet; once a line arrives, lets
/// [`BATCH_WINDOW`] of lines gather, then takes every thread's buffer and
/// writes them out. Writing whenever a line arrived woke this thread for
/// nearly every request under load (a futex wake-up, a `write(2)` and two
/// context switches per line on the proxy's own core: the access log cost
/// 13-20 µs per request, `bench/observability.sh`).
fn write_batches(shared: &Buffers, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(256 << 10, out);
    let mut batch = Vec::new();
    loop {
        let closing = shared.closed.load(Ordering::SeqCst);
        if !shared.pending.swap(false, Ordering::AcqRel) {
            if closing {
                break;
            }
            std::thread::park();
            continue;
        }
        if !closing {
            std::thread::sleep(BATCH_WINDOW);
        }
        let buffers = lock(&shared.all).clone();
        for buffer in &buffers {
            std::mem::swap(&mut *lock(buffer), &mut batch);
            let _ = out.write_all(&batch);
            batch.clear();
            if batch.capacity() > KEEP_CAPACITY {
                batch = Vec::new();
            }
        }
        let _ = out.flush();
        drop(buffers);
        // The buffers of threads that have ended (only the list holds
        // them), once written out, are let go.
        lock(&shared.all).retain(|b| Arc::strong_count(b) > 1 || !lock(b).is_empty());
    }
    let _ = out.flush();
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;

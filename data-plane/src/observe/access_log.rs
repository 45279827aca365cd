//! The access log: one JSON line per request, written when its answer is
//! finished (so status, bytes and durations are final), to stdout or a file
//! (`--access-log`). Lines go through a bounded channel to a writer thread:
//! the request path never waits for the disk; when the writer falls behind,
//! lines are dropped and counted (`dropped`), never queued without bound.
//!
//! No header value is logged, so credentials cannot leak into the log; the
//! query string is left out for the same reason (keys may travel in it).

use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::SystemTime;

/// Lines waiting for the writer before new ones are dropped: a batch
/// window's worth at 800,000 requests per second.
const QUEUE: usize = 16 * 1024;

/// How long lines gather before they are written: a line reaches the file
/// at most this late (nginx's `access_log ... flush=` does the same).
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

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
    tx: SyncSender<Vec<u8>>,
    dropped: AtomicU64,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

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
    pub duration_ms: f64,
    /// From sending upstream to the response head; absent for the proxy's
    /// own answers.
    pub upstream_ms: Option<f64>,
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
        let (tx, rx) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(AccessLog {
            tx,
            dropped: AtomicU64::new(0),
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    pub fn write(&self, entry: &Entry<'_>) {
        // A typical line is 350-450 bytes: one allocation, no growth.
        let mut line = Vec::with_capacity(640);
        super::access_line::encode(&mut line, entry);
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes what is queued and stops the writer (at shutdown, after the
    /// last request, so no batch is lost with the process). Blocks for up
    /// to one batch window.
    pub fn close(&self) {
        // An empty line (never a real one: every line ends in '\n') ends
        // the writer once it has written everything before it.
        let _ = self.tx.send(Vec::new());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Writes lines in batches: the thread blocks while the log is quiet, and
/// once a line arrives lets [`BATCH_WINDOW`] of them gather before one
/// write. Flushing whenever the queue ran empty woke this thread for
/// nearly every request under load (a futex wake-up, a `write(2)` and two
/// context switches per line on the proxy's own core: the access log cost
/// 13-20 µs per request, `bench/observability.sh`); a thread that sleeps
/// is not waiting on the channel, so senders wake nobody.
fn write_lines(rx: Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    while let Ok(line) = rx.recv() {
        if line.is_empty() {
            break;
        }
        let _ = out.write_all(&line);
        std::thread::sleep(BATCH_WINDOW);
        loop {
            match rx.try_recv() {
                Ok(line) if line.is_empty() => {
                    let _ = out.flush();
                    return;
                }
                Ok(line) => {
                    let _ = out.write_all(&line);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_reach_the_file() {
        let dir = std::env::temp_dir().join(format!("tp-access-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let log = AccessLog::start(&Destination::File(path.clone())).unwrap();
        for i in 0..3u16 {
            log.write(&Entry {
                time: SystemTime::now(),
                request_id: "abc",
                trace_id: 0,
                client_ip: "127.0.0.1".parse().unwrap(),
                method: "GET",
                host: "example.com",
                path: "/x",
                status: 200 + i,
                route: Some("r"),
                upstream: Some("u"),
                target: Some("127.0.0.1:1"),
                consumer: None,
                duration_ms: 1.5,
                upstream_ms: Some(1.0),
                bytes_in: 0,
                bytes_out: 2,
                config_version: 7,
            });
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 3 || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let parsed: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2]["status"], 202);
        assert_eq!(parsed[0]["consumer"], serde_json::Value::Null);
        assert_eq!(log.dropped(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Counts the writes that reach the destination.
    struct Counting(std::sync::Arc<AtomicU64>, std::sync::Arc<AtomicU64>);

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.fetch_add(buf.len() as u64, Ordering::SeqCst);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_steady_trickle_of_lines_is_written_in_batches() {
        let writes = std::sync::Arc::new(AtomicU64::new(0));
        let bytes = std::sync::Arc::new(AtomicU64::new(0));
        let log = AccessLog::to(Box::new(Counting(writes.clone(), bytes.clone()))).unwrap();
        let entry = Entry {
            time: SystemTime::now(),
            request_id: "abc",
            trace_id: 0,
            client_ip: "127.0.0.1".parse().unwrap(),
            method: "GET",
            host: "example.com",
            path: "/x",
            status: 200,
            route: None,
            upstream: None,
            target: None,
            consumer: None,
            duration_ms: 1.5,
            upstream_ms: None,
            bytes_in: 0,
            bytes_out: 2,
            config_version: 7,
        };
        let mut line = Vec::new();
        super::super::access_line::encode(&mut line, &entry);
        // One line a millisecond for 200 ms: written as it came, that is
        // about 200 writes; in 20 ms batches about 10.
        for _ in 0..200 {
            log.write(&entry);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let expected = 200 * line.len() as u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while bytes.load(Ordering::SeqCst) < expected {
            assert!(std::time::Instant::now() < deadline, "lines never written");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let n = writes.load(Ordering::SeqCst);
        assert!(n <= 40, "{n} writes for 200 lines");
        // Closing writes what is still queued, at once.
        log.write(&entry);
        log.close();
        assert_eq!(bytes.load(Ordering::SeqCst), expected + line.len() as u64);
    }

    #[test]
    fn destinations_parse() {
        assert_eq!("stdout".parse(), Ok(Destination::Stdout));
        assert_eq!(
            "/var/log/tp.log".parse(),
            Ok(Destination::File("/var/log/tp.log".into()))
        );
        assert!("".parse::<Destination>().is_err());
    }
}

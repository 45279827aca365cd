//! The access log's writer: lines reach the destination, in batches,
//! from every thread, in each thread's order; bounded when it falls behind.

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
            duration: Duration::from_micros(1500),
            upstream_time: Some(Duration::from_millis(1)),
            bytes_in: 0,
            bytes_out: 2,
            config_version: 7,
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() == 3 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
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
struct Counting(Arc<AtomicU64>, Arc<AtomicU64>);

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
    let writes = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
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
        duration: Duration::from_micros(1500),
        upstream_time: None,
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
        std::thread::sleep(Duration::from_millis(1));
    }
    let expected = 200 * line.len() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while bytes.load(Ordering::SeqCst) < expected {
        assert!(std::time::Instant::now() < deadline, "lines never written");
        std::thread::sleep(Duration::from_millis(5));
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

fn entry(request_id: &str, status: u16) -> Entry<'_> {
    Entry {
        time: SystemTime::now(),
        request_id,
        trace_id: 0,
        client_ip: "127.0.0.1".parse().unwrap(),
        method: "GET",
        host: "example.com",
        path: "/x",
        status,
        route: None,
        upstream: None,
        target: None,
        consumer: None,
        duration: Duration::from_micros(1500),
        upstream_time: None,
        bytes_in: 0,
        bytes_out: 2,
        config_version: 7,
    }
}

/// Keeps what is written, for the test to read.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = lock(&self.0).clone();
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }
}

#[test]
fn every_threads_lines_arrive_in_that_threads_order_and_close_writes_the_rest() {
    let out = Capture::default();
    let log = Arc::new(AccessLog::to(Box::new(out.clone())).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..500u16 {
                    log.write(&entry(&format!("t{t}"), i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Most of it is still in the threads' buffers (the batch window has
    // barely begun): closing must write it all before returning.
    log.close();
    let lines = out.lines();
    assert_eq!(lines.len(), 2000);
    for t in 0..4 {
        let statuses: Vec<u64> = lines
            .iter()
            .filter(|l| l["request_id"] == format!("t{t}"))
            .map(|l| l["status"].as_u64().unwrap())
            .collect();
        assert_eq!(statuses, (0..500).collect::<Vec<u64>>(), "thread {t}");
    }
    assert_eq!(log.dropped(), 0);
    // The threads have ended, their buffers written out: let go.
    assert!(lock(&log.shared.all).is_empty());
    log.write(&entry("late", 200));
    assert_eq!(log.dropped(), 1);
}

/// A destination that takes nothing until the test opens it.
struct Stuck(Arc<(Mutex<bool>, std::sync::Condvar)>, Capture);

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (open, turned) = &*self.0;
        let mut open = lock(open);
        while !*open {
            open = turned.wait(open).unwrap();
        }
        self.1.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_writer_that_falls_behind_drops_and_counts_lines_instead_of_growing() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let out = Capture::default();
    let log = AccessLog::to(Box::new(Stuck(gate.clone(), out.clone()))).unwrap();
    let mut line = Vec::new();
    super::super::access_line::encode(&mut line, &entry("abc", 200));
    // The first batch goes to the stuck destination; the next fills this
    // thread's buffer up to the bound.
    log.write(&entry("abc", 200));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !lock(&log.shared.all).iter().all(|b| lock(b).is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "first batch never taken"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let fit = MAX_BUFFERED.div_ceil(line.len());
    for _ in 0..fit + 100 {
        log.write(&entry("abc", 200));
    }
    assert_eq!(log.dropped(), 100);
    let buffered = lock(&log.shared.all)
        .iter()
        .map(|b| lock(b).len())
        .sum::<usize>();
    assert!(
        buffered < MAX_BUFFERED + line.len(),
        "{buffered} bytes buffered"
    );
    {
        let (open, turned) = &*gate;
        *lock(open) = true;
        turned.notify_all();
    }
    log.close();
    assert_eq!(out.lines().len(), 1 + fit);
}

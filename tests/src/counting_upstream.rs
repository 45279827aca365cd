//! A request-counting upstream on raw TCP, in the test process: it records
//! every complete, well-formed request it receives (with the connection it
//! came on) and answers 200, so a test can assert that a malformed request
//! reached it at most once and never smuggled a second one.
//!
//! Paths under `/bad-response/` make it answer with a broken response
//! instead (see [`bad_response`]), keeping the connection open, so a test
//! can check that the proxy does not reuse it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::raw::find;

/// Heads or bodies beyond this close the connection unrecorded.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Recorded {
    /// Which upstream connection (1, 2, ...) carried it.
    pub conn: usize,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct CountingUpstream {
    pub addr: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    conns: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingUpstream {
    pub async fn start() -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let (l, c) = (log.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = c.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, id, l.clone()));
            }
        });
        CountingUpstream {
            addr,
            log,
            conns,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose target contains `needle`.
    pub fn matching(&self, needle: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.target.contains(needle))
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, conn: usize, log: Arc<Mutex<Vec<Recorded>>>) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut stream, &mut buf, conn).await {
        let answer = match bad_response(&req.target) {
            Some(bad) => bad.to_vec(),
            None => format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-seen-path: {}\r\nx-seen-request-id: {}\r\nx-upstream-conn: {conn}\r\n\r\nok",
                req.target,
                req.header("x-request-id").unwrap_or("")
            )
            .into_bytes(),
        };
        log.lock().unwrap().push(req);
        if answer.is_empty() {
            // "hang-up": the request arrived, and the connection closes
            // without a response.
            return;
        }
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Broken (and a few odd but valid) answers, by path.
pub fn bad_response(target: &str) -> Option<&'static [u8]> {
    let path = target.strip_prefix("/bad-response/")?;
    let kind = path.split(['/', '?']).next().unwrap_or("");
    Some(match kind {
        "cl-te" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "two-cl" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        "same-cl-twice" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
        "cl-list" => b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello",
        "bare-cr" => b"HTTP/1.1 200 OK\r\nx-a: a\rb\r\ncontent-length: 5\r\n\r\nhello",
        "obs-fold" => b"HTTP/1.1 200 OK\r\nx-a: a\r\n b\r\ncontent-length: 5\r\n\r\nhello",
        "bad-cl" => b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
        "hang-up" => b"",
        // A body where none may be: the bytes after the head look like a
        // second response, waiting for the next request on the connection.
        "204-body" => b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 8\r\nx-seen-path: /forged\r\n\r\nsmuggled",
        // Valid, but odd: fields the proxy must not pass on among the
        // ones it must (its own X-Request-Id replaces the upstream's).
        "own-fields" => b"HTTP/1.1 200 OK\r\nX-Request-Id: upstream\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Kept: 2\r\ncontent-length: 2\r\n\r\nok",
        // Valid: a chunked body with trailers, one a trailer must not carry.
        "trailers" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-checksum: abc\r\ncontent-length: 99\r\n\r\n",
        // Valid, but odd: bare LF line endings.
        "lf-endings" => b"HTTP/1.1 200 OK\nX-Kept: 1\ncontent-length: 2\n\nok",
        _ => return None,
    })
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            buf.len() <= MAX_MESSAGE
        }
    }
}

async fn line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = find(buf, b"\r\n") {
            let l = String::from_utf8(buf[..i].to_vec()).ok()?;
            buf.drain(..i + 2);
            return Some(l);
        }
        if !fill(stream, buf).await {
            return None;
        }
    }
}

async fn exact(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    while buf.len() < n {
        if !fill(stream, buf).await {
            return None;
        }
    }
    Some(buf.drain(..n).collect())
}

fn header_line(l: &str) -> Option<(String, String)> {
    let (k, v) = l.split_once(':')?;
    let valid = !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    valid.then(|| (k.to_owned(), v.trim().to_owned()))
}

/// One complete request, strictly parsed; `None` on EOF or anything odd.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, conn: usize) -> Option<Recorded> {
    let request_line = line(stream, buf).await?;
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let l = line(stream, buf).await?;
        if l.is_empty() {
            break;
        }
        headers.push(header_line(&l)?);
    }
    let mut req = Recorded {
        conn,
        method,
        target,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size = usize::from_str_radix(&line(stream, buf).await?, 16).ok()?;
            if size == 0 {
                break;
            }
            let mut data = exact(stream, buf, size + 2).await?;
            (data.split_off(size) == b"\r\n").then_some(())?;
            req.body.extend(data);
        }
        loop {
            let l = line(stream, buf).await?;
            if l.is_empty() {
                break;
            }
            req.trailers.push(header_line(&l)?);
        }
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().ok()?;
        req.body = exact(stream, buf, len).await?;
    }
    Some(req)
}

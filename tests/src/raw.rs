//! A raw HTTP/1.1 client for the request-hygiene tests: writes bytes exactly
//! as given (malformed ones included) and reads back whatever responses
//! come, telling a closed connection from one kept alive.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer before calling it a hang.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A chunked body's trailer fields.
    pub trailers: Vec<(String, String)>,
}

impl RawResponse {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// What came back on a connection.
#[derive(Debug)]
pub enum Read {
    Response(RawResponse),
    /// EOF or reset before a complete response.
    Closed,
}

pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("proxy reachable");
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`; a server that closed early (after answering a bad
    /// head) may make this fail, which is not an error for these tests.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Half-closes: the server sees EOF after what was sent.
    pub async fn finish_sending(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// The next response, or `Closed`; panics after [`ANSWER_TIMEOUT`].
    pub async fn read(&mut self) -> Read {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.read_inner()).await {
            Ok(r) => r,
            Err(_) => panic!(
                "no answer and no close within {ANSWER_TIMEOUT:?}; got so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Every response until the connection closes.
    pub async fn read_to_close(&mut self) -> Vec<RawResponse> {
        let mut out = Vec::new();
        while let Read::Response(r) = self.read().await {
            out.push(r);
        }
        out
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn read_inner(&mut self) -> Read {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill().await {
                return Read::Closed;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let ok = if chunked {
            self.read_chunked(&mut resp.body, &mut resp.trailers).await
        } else {
            let len = resp
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            self.read_exact_body(len, &mut resp.body).await
        };
        if ok {
            Read::Response(resp)
        } else {
            Read::Closed
        }
    }

    async fn read_exact_body(&mut self, len: usize, out: &mut Vec<u8>) -> bool {
        while self.buf.len() < len {
            if !self.fill().await {
                return false;
            }
        }
        out.extend(self.buf.drain(..len));
        true
    }

    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn read_chunked(
        &mut self,
        out: &mut Vec<u8>,
        trailers: &mut Vec<(String, String)>,
    ) -> bool {
        loop {
            let Some(line) = self.read_line().await else {
                return false;
            };
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    match self.read_line().await {
                        Some(l) if l.is_empty() => return true,
                        Some(l) => {
                            let (k, v) = l.split_once(':').unwrap_or((&l, ""));
                            trailers.push((k.trim().to_owned(), v.trim().to_owned()));
                        }
                        None => return false,
                    }
                }
            }
            if !self.read_exact_body(size + 2, out).await {
                return false;
            }
            out.truncate(out.len() - 2);
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

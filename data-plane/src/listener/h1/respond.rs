//! Writes a response to an HTTP/1 client: the head (status line, the
//! handler's fields, `Date` when it has none, the framing and connection
//! fields this hop needs), then the body as the handler's body yields it,
//! with `Content-Length` when its size is known, chunked otherwise (close-
//! delimited to an HTTP/1.0 client). A head and a body that is ready at
//! once go out in one write; a chunked body's trailers at its end when the
//! client asked for them (`TE: trailers`). Also the answer to a refused
//! head (`refuse`).

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use tokio::io::AsyncWrite;

use crate::proxy::h1::passed::Passed;
use crate::proxy::request_id;

/// A body frame larger than this is written from its own buffer rather
/// than copied behind the head.
const COPY_MAX: usize = 16 * 1024;

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body is sent (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, length unknown).
    Close,
}

/// What the request said that shapes the answer.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub head: bool,
    pub http10: bool,
    /// The connection closes after this answer (whatever the answer says).
    pub close: bool,
    /// `TE: trailers`: a chunked body's trailers are passed on.
    pub trailers: bool,
}

/// A body that may carry its answer's fields as the bytes they came in
/// (`proxy::h1::passed`): they are written before the answer's map, which
/// then holds only what the handler added.
pub trait PassedFields {
    fn passed(&self) -> Option<&Passed> {
        None
    }
}

impl PassedFields for Full<Bytes> {}

/// Writes the head into `out` and gives the body's framing and whether
/// the connection must close after it (`asked.close`, a `Connection: close`
/// from the handler, or a close-delimited body). `passed`: fields that go
/// out as they are, before the map's.
pub fn head(
    out: &mut Vec<u8>,
    (parts, passed): (&Parts, Option<&Passed>),
    hint: Option<u64>,
    asked: Asked,
) -> (Framing, bool) {
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = passed {
        p.write(out);
    }
    let mut seen = write_fields(out, &parts.headers, status == StatusCode::NO_CONTENT);
    if let Some(p) = passed {
        seen.length = seen.length.or(p.length);
        seen.date |= p.date;
    }
    let bodiless = asked.head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let (framing, add_length) = match (bodiless, seen.length, hint) {
        (true, ..) => (Framing::None, None),
        (false, Some(n), _) => (Framing::Length(n), None),
        (false, None, Some(n)) => (Framing::Length(n), Some(n)),
        (false, None, None) if asked.http10 => (Framing::Close, None),
        (false, None, None) => (Framing::Chunked, None),
    };
    let close = asked.close || seen.close || framing == Framing::Close;
    if let Some(n) = add_length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !seen.date {
        date(out);
    }
    if close && !seen.close && status != StatusCode::SWITCHING_PROTOCOLS {
        out.extend_from_slice(b"connection: close\r\n");
    } else if !close && asked.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, close)
}

/// What the handler's fields said that this hop acts on.
#[derive(Default)]
struct Seen {
    length: Option<u64>,
    close: bool,
    date: bool,
}

/// Writes the handler's fields but a `Transfer-Encoding` (this hop frames
/// the body itself) and, on a 204, a `Content-Length`; notes the ones this
/// hop acts on in the same pass (a compare of standard names each, where
/// three lookups hashed three names).
fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap, no_content: bool) -> Seen {
    let mut seen = Seen::default();
    for (name, value) in headers {
        if *name == CONTENT_LENGTH {
            if no_content {
                continue;
            }
            if seen.length.is_none() {
                seen.length = std::str::from_utf8(value.as_bytes())
                    .ok()
                    .and_then(|v| v.parse().ok());
            }
        } else if *name == TRANSFER_ENCODING {
            continue;
        } else if *name == CONNECTION {
            seen.close |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if *name == DATE {
            seen.date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    seen
}

thread_local! {
    /// `date: <IMF-fixdate>\r\n`, made again when the second changes.
    static DATE_LINE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE_LINE.with_borrow_mut(|(at, line)| {
        if *at != secs {
            *at = secs;
            line.clear();
            line.extend_from_slice(b"date: ");
            line.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            line.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    });
}

/// The body on its way out: frames encoded into the connection's write
/// buffer (or, when large, written from their own), flushed when the body
/// has nothing ready.
pub struct Writer<B> {
    body: B,
    framing: Framing,
    /// Bytes of a Length body still to come.
    left: u64,
    /// A large frame written after the buffer.
    big: Option<Bytes>,
    done: bool,
    /// Whether trailers go out at a chunked body's end (`TE: trailers`).
    pass_trailers: bool,
    /// The body's trailers, kept for its end (boxed: rare, and the writer
    /// sits in every request's future).
    trailers: Option<Box<HeaderMap>>,
}

/// Why a response could not be finished: the connection then closes.
#[derive(Debug)]
pub enum WriteError {
    Io(std::io::Error),
    /// The body failed, or yielded more or less than its declared length.
    Body,
}

impl<B> Writer<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    pub fn new(body: B, framing: Framing, asked: Asked) -> Writer<B> {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Writer {
            body,
            framing,
            left,
            big: None,
            done: framing == Framing::None,
            pass_trailers: asked.trailers && framing == Framing::Chunked,
            trailers: None,
        }
    }

    /// Drives the body into `out` and `out` into `io` until all of it is
    /// written. `out[*written..]` is what is still to be written.
    pub fn poll<I: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        out: &mut Vec<u8>,
        written: &mut usize,
    ) -> Poll<Result<(), WriteError>> {
        loop {
            // Take frames while they are ready and the buffer is small.
            let mut waiting = false;
            while !self.done && self.big.is_none() && out.len() - *written < COPY_MAX {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => self.data(out, data)?,
                        // Trailers end a chunked body, for a client that
                        // asked for them; dropped otherwise.
                        Err(frame) => {
                            if let (true, Ok(t)) = (self.pass_trailers, frame.into_trailers()) {
                                self.trailers = Some(Box::new(t));
                            }
                        }
                    },
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(WriteError::Body)),
                    Poll::Ready(None) => self.end(out)?,
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                }
            }
            ready!(flush(cx, io, out, written)).map_err(WriteError::Io)?;
            if let Some(big) = &mut self.big {
                while big.has_remaining() {
                    let n = ready!(Pin::new(&mut *io).poll_write(cx, big.chunk()))
                        .map_err(WriteError::Io)?;
                    if n == 0 {
                        return Poll::Ready(Err(WriteError::Io(
                            std::io::ErrorKind::WriteZero.into(),
                        )));
                    }
                    big.advance(n);
                }
                self.big = None;
                if self.framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            // Everything written. Stopped by a full buffer, the body may
            // have more ready, and it has registered no waker: back to it.
            if !waiting {
                continue;
            }
            // The body has nothing ready; it wakes this task when it has.
            return Poll::Pending;
        }
    }

    fn data(&mut self, out: &mut Vec<u8>, data: Bytes) -> Result<(), WriteError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.framing {
            Framing::None => return Ok(()),
            Framing::Length(_) => {
                self.left = self
                    .left
                    .checked_sub(data.len() as u64)
                    .ok_or(WriteError::Body)?;
            }
            Framing::Chunked => {
                let mut hex = [0u8; 16];
                out.extend_from_slice(hex_len(data.len(), &mut hex));
                out.extend_from_slice(b"\r\n");
            }
            Framing::Close => {}
        }
        if data.len() > COPY_MAX {
            // Its chunk's CRLF goes into the buffer once it is written.
            self.big = Some(data);
        } else {
            out.extend_from_slice(&data);
            if self.framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), WriteError> {
        self.done = true;
        match self.framing {
            Framing::Length(_) if self.left != 0 => Err(WriteError::Body),
            Framing::Chunked => {
                out.extend_from_slice(b"0\r\n");
                if let Some(trailers) = self.trailers.take() {
                    super::trailers::write(out, &trailers);
                }
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Answers a head that was refused (the caller then closes): the proxy's
/// error body, with a new request id.
pub async fn refuse<I: AsyncWrite + Unpin>(
    io: &mut I,
    (out, written): (&mut Vec<u8>, &mut usize),
    e: &crate::Error,
) {
    tracing::debug!(error = %e, "request head refused");
    let id = request_id::generate();
    let mut resp = crate::proxy::error_response(e, &id);
    resp.headers_mut()
        .insert(request_id::X_REQUEST_ID.clone(), id);
    let (parts, body) = resp.into_parts();
    let asked = Asked {
        head: false,
        http10: false,
        close: true,
        trailers: false,
    };
    let (framing, _) = head(out, (&parts, None), body.size_hint().exact(), asked);
    let mut w = Writer::new(body, framing, asked);
    let _ = std::future::poll_fn(|cx| w.poll(cx, io, out, written)).await;
}

fn hex_len(n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes `out[*written..]`; clears `out` once all of it is written.
pub fn flush<I: AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    io: &mut I,
    out: &mut Vec<u8>,
    written: &mut usize,
) -> Poll<std::io::Result<()>> {
    while *written < out.len() {
        let n = ready!(Pin::new(&mut *io).poll_write(cx, &out[*written..]))?;
        if n == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        *written += n;
    }
    out.clear();
    *written = 0;
    ready!(Pin::new(&mut *io).poll_flush(cx))?;
    Poll::Ready(Ok(()))
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;

//! Decodes a chunked upstream body with httparse: chunk sizes (extensions
//! skipped), data, and the trailer section. Sans-IO like `decode`: bytes in
//! a `BytesMut`, called again when more arrive. Every malformed input is an
//! [`Invalid`] (a 502, the connection dropped).

use bytes::{Bytes, BytesMut};
use http::header::HeaderMap;

use super::decode::{Invalid, MAX_HEAD, MAX_HEADERS, field_map};
use super::names::Names;

/// Chunks larger than 1 TiB are treated as a framing attack, not a body.
const MAX_CHUNK: u64 = 1 << 40;
/// Chunk extensions a body may carry in all (they are dropped, never
/// passed on: a body of extensions is a way to waste the proxy's time).
const MAX_EXTENSIONS: usize = 16 * 1024;

#[derive(Debug)]
pub enum Chunk {
    /// Body bytes (never empty), split off the front of `buf`.
    Data(Bytes),
    /// The trailer section (only when it has a field); End follows next call.
    Trailers(HeaderMap),
    /// The last chunk and the trailer section were consumed.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Size,
    Data(u64),
    Crlf,
    Trailers,
    Ending,
    Done,
}

/// Chunked body decoder state machine.
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    /// Bytes of chunk extensions seen so far.
    extensions: usize,
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked::default()
    }

    /// Decodes what it can from the front of `buf`. `Ok(None)`: need more
    /// bytes; nothing is lost, partial progress is kept in `self` or `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, Invalid> {
        loop {
            match self.state {
                State::Size => {
                    // httparse reads an empty size as 0, which would end the body early.
                    if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                        return Err(Invalid("bad chunk size"));
                    }
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((n, size))) => {
                            if size > MAX_CHUNK {
                                return Err(Invalid("chunk size too large"));
                            }
                            self.extensions(&buf[..n])?;
                            let _ = buf.split_to(n);
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::Data(size)
                            };
                        }
                        // Extensions are unbounded in the grammar; the buffer is not.
                        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                            return Err(Invalid("chunk size line too long"));
                        }
                        Ok(httparse::Status::Partial) => return Ok(None),
                        Err(_) => return Err(Invalid("bad chunk size")),
                    }
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let rest = left - take as u64;
                    self.state = if rest == 0 {
                        State::Crlf
                    } else {
                        State::Data(rest)
                    };
                    return Ok(Some(Chunk::Data(buf.split_to(take).freeze())));
                }
                State::Crlf => {
                    let have = buf.len().min(2);
                    if buf[..have] != b"\r\n"[..have] {
                        return Err(Invalid("chunk not followed by CRLF"));
                    }
                    if have < 2 {
                        return Ok(None);
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buf),
                State::Ending => {
                    self.state = State::Done;
                    return Ok(Some(Chunk::End));
                }
                State::Done => return Ok(Some(Chunk::End)),
            }
        }
    }

    /// Checks a size line's extensions (httparse skips them up to the
    /// line's end): no CR or LF inside, the line ended by CRLF, and
    /// [`MAX_EXTENSIONS`] in all.
    fn extensions(&mut self, line: &[u8]) -> Result<(), Invalid> {
        let Some(body) = line.strip_suffix(b"\r\n") else {
            return Err(Invalid("chunk size line not ended by CRLF"));
        };
        let Some(start) = memchr::memchr(b';', body) else {
            return Ok(());
        };
        let ext = &body[start..];
        if memchr::memchr2(b'\r', b'\n', ext).is_some() {
            return Err(Invalid("CR or LF in a chunk extension"));
        }
        self.extensions += ext.len();
        if self.extensions > MAX_EXTENSIONS {
            return Err(Invalid("chunk extensions too long"));
        }
        Ok(())
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, Invalid> {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let window = &buf[..buf.len().min(MAX_HEAD)];
        let (len, count) = match httparse::parse_headers(window, &mut storage) {
            Ok(httparse::Status::Complete((len, fields))) => (len, fields.len()),
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(Invalid("trailer section too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Invalid("too many trailer fields")),
            Err(_) => return Err(Invalid("bad trailer section")),
        };
        let block = buf.split_to(len).freeze();
        if count == 0 {
            self.state = State::Done;
            return Ok(Some(Chunk::End));
        }
        self.state = State::Ending;
        // Parsed again from its own bytes, as a head is (rare: trailers).
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(&block, &mut storage) {
            Ok(httparse::Status::Complete((_, fields))) => {
                let mut names = Names::default();
                let names = names
                    .of(fields.iter().map(|h| h.name))
                    .ok_or(Invalid("bad trailer name"))?;
                field_map(&block, fields, names, None).map(|map| Some(Chunk::Trailers(map)))
            }
            _ => Err(Invalid("bad trailer section")),
        }
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;

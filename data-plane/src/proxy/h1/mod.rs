//! The upstream side of HTTP/1.1, on httparse rather than hyper's client:
//! the proxy writes each request head into its connection's buffer
//! (`encode`), parses response heads and bodies sans-IO (`decode`: heads,
//! the framing rules of RFC 9112 §6.3 strictly, hop-by-hop fields left out;
//! `chunked`: chunk sizes and trailers; httparse for both; `names` keeps a
//! connection's field names from one head to the next; `buffers`: read
//! buffers lent per thread, shared with the client side; `passed`: an
//! answer's fields kept as the bytes they came in, when nothing reads
//! them), and runs the
//! exchange in the request's own task (`conn`) on its socket (`io`).
//! hyper's client did the same work through a dispatcher, three
//! channels (request, response, body) and a fresh read buffer per message;
//! what it cost is in docs/PERFORMANCE.md. HTTP/2 upstreams stay on
//! hyper's client.

pub mod buffers;
pub mod chunked;
pub mod conn;
pub mod decode;
pub mod encode;
pub mod io;
pub mod names;
pub mod passed;

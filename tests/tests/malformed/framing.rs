//! Class A: message framing, header syntax and Host (HARDENING §3 A 1–11,
//! 13). Each request names itself in its path (`/c/<name>/`), and its
//! smuggled follower as `/smuggled/<name>/`.

use super::{Case, Expect, FORWARDED, FORWARDED_THEN_CLOSED, Setup, run_all};

use Expect::{Refused, Status};

/// `POST /c/<name>/` with Host, the given header lines (each ending in
/// CRLF) and the body bytes as given.
fn post(name: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("POST /c/{name}/ HTTP/1.1\r\nHost: h\r\n{headers}\r\n{body}").into_bytes()
}

/// A GET with the given header lines (no body).
fn get(name: &str, headers: &str) -> Vec<u8> {
    format!("GET /c/{name}/ HTTP/1.1\r\nHost: h\r\n{headers}\r\n").into_bytes()
}

/// A complete request hidden after a body, for a parser that frames
/// the body differently to find.
fn smuggled(name: &str) -> String {
    format!("GET /smuggled/{name}/ HTTP/1.1\r\nHost: h\r\n\r\n")
}

/// `POST` with `CL: 5` and the given Transfer-Encoding line(s), a chunked
/// body and a smuggled request behind it.
fn te_with_cl(name: &'static str, te_lines: &str, expect: Expect) -> Case {
    let body = format!("0\r\n\r\n{}", smuggled(name));
    Case::new(
        name,
        post(name, &format!("Content-Length: 5\r\n{te_lines}"), &body),
        expect,
    )
}

/// `POST` with the given Content-Length line(s) and a smuggled request in
/// what a lenient parser would take for the body or the next request.
fn cl(name: &'static str, cl_lines: &str) -> Case {
    Case::new(
        name,
        post(name, cl_lines, &format!("hello{}", smuggled(name))),
        Status(400),
    )
}

/// A chunked `POST` whose body is `chunks`, followed by a smuggled request.
fn chunked(name: &'static str, chunks: &str) -> Case {
    let body = format!("{chunks}{}", smuggled(name));
    Case::new(
        name,
        post(name, "Transfer-Encoding: chunked\r\n", &body),
        Refused,
    )
}

fn cases() -> Vec<Case> {
    let mut c = vec![
        // 1. CL and TE: hyper reads chunked, drops CL, closes after answering.
        te_with_cl(
            "cl-then-te",
            "Transfer-Encoding: chunked\r\n",
            FORWARDED_THEN_CLOSED,
        ),
        Case::new(
            "te-then-cl",
            post(
                "te-then-cl",
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                &format!("0\r\n\r\n{}", smuggled("te-then-cl")),
            ),
            FORWARDED_THEN_CLOSED,
        ),
        Case::new(
            "cl-shorter-than-chunks",
            post(
                "cl-shorter-than-chunks",
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                &format!(
                    "5\r\nhello\r\n0\r\n\r\n{}",
                    smuggled("cl-shorter-than-chunks")
                ),
            ),
            FORWARDED_THEN_CLOSED,
        ),
        // 2. Conflicting lengths.
        cl(
            "two-different-cl",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
        ),
        cl("cl-list-different", "Content-Length: 5, 6\r\n"),
        cl("cl-list-same", "Content-Length: 5, 5\r\n"),
        // Two equal lengths are allowed by RFC 9110 and unambiguous.
        Case::new(
            "two-equal-cl",
            post(
                "two-equal-cl",
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                "hello",
            ),
            FORWARDED,
        ),
        // 3. Malformed lengths.
        cl("cl-plus", "Content-Length: +5\r\n"),
        cl("cl-negative", "Content-Length: -1\r\n"),
        cl("cl-hex", "Content-Length: 0x10\r\n"),
        cl("cl-underscore", "Content-Length: 1_0\r\n"),
        cl("cl-empty", "Content-Length: \r\n"),
        cl("cl-overflow", "Content-Length: 18446744073709551616\r\n"),
        cl("cl-internal-space", "Content-Length: 1 0\r\n"),
        cl("cl-letters", "Content-Length: five\r\n"),
        Case::new(
            "cl-u64-max",
            post(
                "cl-u64-max",
                "Content-Length: 18446744073709551615\r\n",
                "hello",
            ),
            Refused,
        ),
        // 4. Disguised Transfer-Encoding, each with CL and a smuggled GET.
        te_with_cl(
            "te-xchunked",
            "Transfer-Encoding: xchunked\r\n",
            Status(400),
        ),
        te_with_cl(
            "te-chunked-identity",
            "Transfer-Encoding: chunked, identity\r\n",
            Status(400),
        ),
        te_with_cl(
            "te-identity-chunked",
            "Transfer-Encoding: identity, chunked\r\n",
            Status(501),
        ),
        te_with_cl(
            "te-gzip-chunked",
            "Transfer-Encoding: gzip, chunked\r\n",
            Status(501),
        ),
        te_with_cl(
            "te-leading-comma",
            "Transfer-Encoding: , chunked\r\n",
            Status(501),
        ),
        te_with_cl(
            "te-space-before-colon",
            "Transfer-Encoding : chunked\r\n",
            Status(400),
        ),
        te_with_cl(
            "te-vertical-tab",
            "Transfer-Encoding: \x0bchunked\r\n",
            Status(400),
        ),
        te_with_cl(
            "te-form-feed",
            "Transfer-Encoding: \x0cchunked\r\n",
            Status(400),
        ),
        te_with_cl("te-nul", "Transfer-Encoding: chunked\x00\r\n", Status(400)),
        te_with_cl(
            "te-quoted",
            "Transfer-Encoding: \"chunked\"\r\n",
            Status(400),
        ),
        te_with_cl(
            "te-two-headers",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            Status(400),
        ),
        te_with_cl(
            "te-two-headers-identity-last",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            Status(400),
        ),
        // OWS around the value and letter case are allowed: still chunked,
        // and with a CL as well the connection closes.
        te_with_cl(
            "te-trailing-space",
            "Transfer-Encoding: chunked \r\n",
            FORWARDED_THEN_CLOSED,
        ),
        te_with_cl(
            "te-leading-tab",
            "Transfer-Encoding:\tchunked\r\n",
            FORWARDED_THEN_CLOSED,
        ),
        te_with_cl(
            "te-uppercase",
            "Transfer-Encoding: CHUNKED\r\n",
            FORWARDED_THEN_CLOSED,
        ),
        Case::new(
            "te-on-http10",
            format!(
                "POST /c/te-on-http10/ HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                smuggled("te-on-http10")
            ),
            Status(400),
        ),
        // 5. obs-fold.
        Case::new(
            "obs-fold-te",
            post(
                "obs-fold-te",
                "Transfer-Encoding: identity\r\n chunked\r\n",
                "0\r\n\r\n",
            ),
            Status(400),
        ),
        Case::new(
            "obs-fold-custom",
            get("obs-fold-custom", "X-A: a\r\n b\r\n"),
            Status(400),
        ),
        Case::new(
            "obs-fold-tab",
            get("obs-fold-tab", "X-A: a\r\n\tb\r\n"),
            Status(400),
        ),
        Case::new(
            "obs-fold-host",
            "GET /c/obs-fold-host/ HTTP/1.1\r\nHost: h\r\n evil\r\n\r\n",
            Status(400),
        ),
        // 6. Bad chunk sizes and line endings: the body fails after the head
        //    went upstream; the upstream never gets a complete request.
        chunked("chunk-size-letter", "Z\r\nhello\r\n0\r\n\r\n"),
        chunked("chunk-size-0x", "0x5\r\nhello\r\n0\r\n\r\n"),
        chunked("chunk-size-plus", "+5\r\nhello\r\n0\r\n\r\n"),
        chunked("chunk-size-minus", "-5\r\nhello\r\n0\r\n\r\n"),
        chunked("chunk-size-leading-space", " 5\r\nhello\r\n0\r\n\r\n"),
        chunked(
            "chunk-size-17-hex-digits",
            "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        chunked("chunk-size-bare-lf", "5\nhello\r\n0\r\n\r\n"),
        chunked("chunk-size-bare-cr", "5\rhello\r\n0\r\n\r\n"),
        chunked("chunk-longer-than-size", "3\r\nhello\r\n0\r\n\r\n"),
        chunked("chunk-data-bare-lf", "5\r\nhello\n0\r\n\r\n"),
        Case {
            half_close: true,
            ..chunked("chunk-no-last", "5\r\nhello\r\n")
        },
        // 7. Chunk extensions: a CR or LF inside, or more than hyper's 16 KiB.
        chunked("chunk-ext-cr", "5;a\rb\r\nhello\r\n0\r\n\r\n"),
        chunked("chunk-ext-lf", "5;a\nb\r\nhello\r\n0\r\n\r\n"),
        chunked(
            "chunk-ext-64k",
            &format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(64 * 1024)),
        ),
        // A bare `;` is accepted: extensions are dropped, the body re-framed.
        Case::new(
            "chunk-ext-bare-semicolon",
            post(
                "chunk-ext-bare-semicolon",
                "Transfer-Encoding: chunked\r\n",
                "5;\r\nhello\r\n0\r\n\r\n",
            ),
            FORWARDED,
        ),
        // 8. NUL, bare CR in header values.
        Case::new(
            "value-nul",
            get("value-nul", "X-A: a\x00b\r\n"),
            Status(400),
        ),
        Case::new(
            "value-bare-cr",
            get("value-bare-cr", "X-A: a\rb\r\n"),
            Status(400),
        ),
        Case::new(
            "value-del",
            get("value-del", "X-A: a\x7fb\r\n"),
            Status(400),
        ),
        // A bare LF ends a line for hyper (RFC 9112 §2.2 allows it, nginx
        // does the same): the upstream gets the fields as hyper read them,
        // re-serialised with CRLF, so it cannot disagree with us.
        Case::new(
            "value-bare-lf",
            get("value-bare-lf", "X-A: a\nX-Split: 1\r\n"),
            FORWARDED,
        ),
        Case::new(
            "bare-lf-lines",
            "GET /c/bare-lf-lines/ HTTP/1.1\nHost: h\n\n",
            FORWARDED,
        ),
        Case::new(
            "bare-lf-hides-te",
            post(
                "bare-lf-hides-te",
                "Content-Length: 5\r\nX-A: a\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{}", smuggled("bare-lf-hides-te")),
            ),
            FORWARDED_THEN_CLOSED,
        ),
        // 9. Header names.
        Case::new(
            "name-with-space",
            get("name-with-space", "X A: 1\r\n"),
            Status(400),
        ),
        Case::new(
            "name-underscore-cl",
            post("name-underscore-cl", "Content_Length: 5\r\n", "hello"),
            Status(400),
        ),
        Case::new(
            "name-underscore-xff",
            get("name-underscore-xff", "X_Forwarded_For: 10.0.0.1\r\n"),
            Status(400),
        ),
        Case::new(
            "name-with-slash",
            get("name-with-slash", "X/A: 1\r\n"),
            Status(400),
        ),
        Case::new("name-empty", get("name-empty", ": 1\r\n"), Status(400)),
        Case::new(
            "name-non-ascii",
            get("name-non-ascii", "X\u{e9}A: 1\r\n"),
            Status(400),
        ),
        Case::new(
            "name-with-nul",
            get("name-with-nul", "X\x00A: 1\r\n"),
            Status(400),
        ),
        // 10. Host.
        Case::new(
            "host-missing",
            "GET /c/host-missing/ HTTP/1.1\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "host-twice",
            get("host-twice", "Host: other\r\n"),
            Status(400),
        ),
        Case::new(
            "host-twice-same",
            get("host-twice-same", "Host: h\r\n"),
            Status(400),
        ),
        Case::new(
            "host-userinfo",
            "GET /c/host-userinfo/ HTTP/1.1\r\nHost: user@h\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "host-with-space",
            "GET /c/host-with-space/ HTTP/1.1\r\nHost: h x\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "absolute-uri-other-host",
            "GET http://evil.example/c/absolute-uri-other-host/ HTTP/1.1\r\nHost: h\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "absolute-uri-userinfo",
            "GET http://user@h/c/absolute-uri-userinfo/ HTTP/1.1\r\nHost: h\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "absolute-uri-without-host",
            "GET http://h/c/absolute-uri-without-host/ HTTP/1.1\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "absolute-uri-same-host",
            "GET http://H/c/absolute-uri-same-host/ HTTP/1.1\r\nHost: h\r\n\r\n",
            FORWARDED,
        ),
        // HTTP/1.0 may omit Host; it closes after the answer.
        Case::new(
            "http10-without-host",
            "GET /c/http10-without-host/ HTTP/1.0\r\n\r\n",
            FORWARDED_THEN_CLOSED,
        ),
        // 11. A body on GET is read as a body, never as the next request.
        Case::new(
            "get-with-body",
            format!(
                "GET /c/get-with-body/ HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{}",
                smuggled("get-with-body").len(),
                smuggled("get-with-body")
            ),
            FORWARDED,
        ),
        // 13. Trailers never reach the upstream (checked for every
        //     forwarded case).
        Case::new(
            "trailers-dropped",
            post(
                "trailers-dropped",
                "Transfer-Encoding: chunked\r\nTrailer: Content-Length, Host, Authorization\r\n",
                "5\r\nhello\r\n0\r\nContent-Length: 100\r\nHost: evil\r\nAuthorization: Basic eA==\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            FORWARDED,
        ),
    ];
    // Garbage request lines.
    c.extend([
        Case::new(
            "method-with-space",
            "G ET /c/method-with-space/ HTTP/1.1\r\nHost: h\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "version-garbage",
            "GET /c/version-garbage/ HTTP/9.9\r\nHost: h\r\n\r\n",
            Refused,
        ),
        Case::new(
            "target-with-control",
            "GET /c/target-with-control/\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
            Status(400),
        ),
    ]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_headers_and_host_are_refused_or_unambiguous() {
    let s = Setup::start(&[]).await;
    run_all(&s, &cases()).await;
}

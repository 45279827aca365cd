//! Class C: paths and hosts (HARDENING §3 C 20–21). The path is normalised
//! once, and the route (`/admin` → the `admin` upstream) and the upstream
//! see that same path; encoded slashes, encoded controls and dot segments
//! with parameters are refused.

use super::{Case, Expect, FORWARDED, Setup, run_all};

use Expect::{Forwarded, Status};

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n")
}

/// Routed to the admin upstream as `target`.
const fn admin(target: &'static str) -> Expect {
    Forwarded {
        target,
        admin: true,
        closes: false,
    }
}

/// Routed to the main upstream as `target`.
const fn main(target: &'static str) -> Expect {
    Forwarded {
        target,
        admin: false,
        closes: false,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // Dot segments resolve before routing: the admin route sees them.
        Case::new(
            "dotdot",
            get("/pub/../admin/dotdot/"),
            admin("/admin/dotdot/"),
        ),
        Case::new(
            "dotdot-above-root",
            get("/../../admin/dotdot-above-root/"),
            admin("/admin/dotdot-above-root/"),
        ),
        Case::new(
            "encoded-dotdot",
            get("/%2e%2e/admin/encoded-dotdot/"),
            admin("/admin/encoded-dotdot/"),
        ),
        Case::new(
            "encoded-dotdot-upper",
            get("/pub/%2E%2E/admin/encoded-dotdot-upper/"),
            admin("/admin/encoded-dotdot-upper/"),
        ),
        Case::new(
            "half-encoded-dotdot",
            get("/pub/.%2e/admin/half-encoded-dotdot/"),
            admin("/admin/half-encoded-dotdot/"),
        ),
        Case::new(
            "single-dots",
            get("/./admin/./single-dots/."),
            admin("/admin/single-dots/"),
        ),
        Case::new(
            "double-slash",
            get("//admin//double-slash/"),
            admin("/admin/double-slash/"),
        ),
        Case::new(
            "encoded-unreserved",
            get("/%61dmin/encoded-unreserved/%7e"),
            admin("/admin/encoded-unreserved/~"),
        ),
        // Decoded once: %25 stays, so %252e is no dot.
        Case::new(
            "double-encoded-dot",
            get("/c/double-encoded-dot/%252e%252e/x"),
            main("/c/double-encoded-dot/%252e%252e/x"),
        ),
        // Reserved escapes stay encoded, hex upper-cased.
        Case::new(
            "encoded-colon",
            get("/c/encoded-colon/a%3ab"),
            main("/c/encoded-colon/a%3Ab"),
        ),
        // Matrix parameters are part of the segment: `/admin;x=y` is not
        // the `/admin` route (docs/proxy.md says why that matters).
        Case::new(
            "segment-parameters",
            get("/admin;x=y/segment-parameters/"),
            main("/admin;x=y/segment-parameters/"),
        ),
        // Refused.
        Case::new("encoded-slash", get("/c/encoded-slash/a%2Fb"), Status(400)),
        Case::new(
            "encoded-slash-lower",
            get("/c/encoded-slash-lower/..%2fadmin"),
            Status(400),
        ),
        Case::new(
            "encoded-backslash",
            get("/c/encoded-backslash/..%5Cadmin"),
            Status(400),
        ),
        Case::new(
            "dotdot-semicolon",
            get("/c/dotdot-semicolon/..;/admin"),
            Status(400),
        ),
        Case::new(
            "dot-semicolon",
            get("/c/dot-semicolon/.;x=1/admin"),
            Status(400),
        ),
        Case::new(
            "encoded-crlf",
            get("/c/encoded-crlf/%0d%0aX-Injected:%201"),
            Status(400),
        ),
        Case::new("encoded-nul", get("/c/encoded-nul/%00"), Status(400)),
        Case::new("encoded-del", get("/c/encoded-del/%7F"), Status(400)),
        Case::new("bad-escape", get("/c/bad-escape/%zz"), Status(400)),
        Case::new(
            "truncated-escape",
            get("/c/truncated-escape/%4"),
            Status(400),
        ),
        Case::new("raw-backslash", get("/c/raw-backslash/a\\b"), Status(400)),
        Case::new(
            "asterisk-form",
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
            Status(400),
        ),
        Case::new(
            "authority-form",
            "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
            Status(400),
        ),
        // Hosts are matched canonically: case, trailing dot and port.
        Case::new(
            "host-canonical",
            "GET /hosted/host-canonical/ HTTP/1.1\r\nHost: API.Example.COM.:8443\r\n\r\n",
            admin("/hosted/host-canonical/"),
        ),
        Case::new(
            "host-other",
            "GET /hosted/host-other/ HTTP/1.1\r\nHost: api.example.org\r\n\r\n",
            main("/hosted/host-other/"),
        ),
        Case::new(
            "query-untouched",
            get("/c/query-untouched/?a=%2F..%2F&b=%0d"),
            main("/c/query-untouched/?a=%2F..%2F&b=%0d"),
        ),
        Case::new("plain", get("/c/plain/"), FORWARDED),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalised_once_and_routed_as_forwarded() {
    let s = Setup::start(&[]).await;
    run_all(&s, &cases()).await;
}

//! The normalisation rule, case by case, and its invariants over random
//! paths built from the tokens that matter (dots, slashes, encodings,
//! parameters).

use proptest::prelude::*;

use super::*;

fn ok(path: &str) -> String {
    normalize(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_owned()
}

fn refused(path: &str) -> bool {
    matches!(normalize(path), Err(Error::InvalidPath(_)))
}

#[test]
fn common_paths_are_borrowed_unchanged() {
    for p in [
        "/",
        "/api",
        "/api/",
        "/api/users/7",
        "/a.b/c..d/...",
        "/.well-known/x",
        "/a;b=c",
        "/a%20b",
        "/caf%C3%A9",
        "/%252e",
    ] {
        assert!(matches!(normalize(p).unwrap(), Cow::Borrowed(_)), "{p}");
        assert_eq!(ok(p), p);
    }
}

#[test]
fn dot_segments_are_removed_as_rfc_3986_says() {
    let cases = [
        ("/pub/../admin", "/admin"),
        ("/a/b/c/./../../g", "/a/g"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/.", "/"),
        ("/a/./b", "/a/b"),
        ("/a/b/../../..", "/"),
    ];
    for (input, want) in cases {
        assert_eq!(ok(input), want, "{input}");
    }
}

#[test]
fn encoded_dots_count_as_dots_and_decoding_happens_once() {
    assert_eq!(ok("/%2e%2e/admin"), "/admin");
    assert_eq!(ok("/pub/%2E%2e/admin"), "/admin");
    assert_eq!(ok("/pub/.%2e/admin"), "/admin");
    assert_eq!(ok("/%252e%252e/admin"), "/%252e%252e/admin");
    assert_eq!(ok("/%41%62c%7e"), "/Abc~");
    assert_eq!(ok("/a%3ab"), "/a%3Ab");
    assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
    assert_eq!(ok("/a%20b"), "/a%20b");
}

#[test]
fn empty_segments_are_merged() {
    assert_eq!(ok("//admin"), "/admin");
    assert_eq!(ok("/a//b///c"), "/a/b/c");
    assert_eq!(ok("//"), "/");
    assert_eq!(ok("/a//"), "/a/");
    assert_eq!(ok("/a//../b"), "/b");
}

#[test]
fn encoded_slashes_controls_and_bad_escapes_are_refused() {
    for p in [
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a%5Cb",
        "/%2e%2e%2fadmin",
        "/a%00",
        "/a%0d%0aX-Injected:1",
        "/a%0A",
        "/a%7f",
        "/a%",
        "/a%4",
        "/a%zz",
        "/a%%41",
    ] {
        assert!(refused(p), "{p} must be refused");
    }
}

#[test]
fn raw_bytes_outside_visible_ascii_and_backslashes_are_refused() {
    for p in [
        "/a\\b",
        "/a b",
        "/a\tb",
        "/a\0",
        "/a\r\nb",
        "/caf\u{e9}",
        "/a#b",
        "/a\x7f",
    ] {
        assert!(refused(p), "{p:?} must be refused");
    }
}

#[test]
fn dot_segments_with_parameters_are_refused() {
    for p in [
        "/..;/admin",
        "/pub/..;x=1/admin",
        "/.;/a",
        "/%2e%2e;/admin",
        "/a/..;",
    ] {
        assert!(refused(p), "{p} must be refused");
    }
    // Parameters on ordinary segments are kept as they are.
    assert_eq!(ok("/admin;x=y"), "/admin;x=y");
}

#[test]
fn non_origin_forms_are_refused() {
    for p in ["", "*", "a/b", "example.com:443"] {
        assert!(refused(p), "{p:?} must be refused");
    }
}

/// Random paths from the tokens that make normalisation interesting.
fn path() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "a", "B", "/", "//", ".", "..", "%2e", "%2E", "%2f", "%5C", "%41", "%7e", "%3a", "%25",
        "%", "%0d", ";", ";x=1", "~", "-", "_", "%c3%a9", "...", ".a",
    ]);
    prop::collection::vec(token, 0..16).prop_map(|t| format!("/{}", t.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn normalized_paths_are_fixed_points_without_dot_segments(p in path()) {
        if let Ok(out) = normalize(&p) {
            prop_assert!(out.starts_with('/'), "{p} → {out}");
            let again = normalize(&out);
            prop_assert!(
                matches!(again, Ok(Cow::Borrowed(s)) if s == out),
                "not idempotent: {p} → {out} → {again:?}"
            );
            let mut segments = out[1..].split('/').peekable();
            while let Some(seg) = segments.next() {
                prop_assert!(seg != "." && seg != "..", "dot segment in {out} (from {p})");
                prop_assert!(!seg.is_empty() || segments.peek().is_none(), "empty segment in {out}");
            }
            let upper = out.to_ascii_uppercase();
            prop_assert!(!upper.contains("%2F") && !upper.contains("%5C"), "{out}");
            prop_assert!(!upper.contains("%2E"), "an encoded dot survived: {out}");
        }
    }

    #[test]
    fn arbitrary_input_never_panics(p in "\\PC*") {
        let _ = normalize(&p);
        let _ = normalize(&format!("/{p}"));
    }
}

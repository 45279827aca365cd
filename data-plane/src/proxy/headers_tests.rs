//! Hop-by-hop stripping, the forwarding fields and addresses as text.

use super::*;

#[test]
fn every_hop_by_hop_name_is_found_at_its_index() {
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(hop_index(name), Some(i), "{name}");
    }
    assert_eq!(hop_index(&header::TE), None);
    assert_eq!(hop_index(&HeaderName::from_static("x-keep-alive")), None);
}

#[test]
fn strips_hop_by_hop_and_connection_named() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, x-secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("gzip"));
    h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-kept"));

    // Every Connection header counts, in any case.
    let mut h = HeaderMap::new();
    h.append(header::CONNECTION, HeaderValue::from_static("X-One"));
    h.append(header::CONNECTION, HeaderValue::from_static("close, x-two"));
    h.insert("x-one", HeaderValue::from_static("1"));
    h.insert("x-two", HeaderValue::from_static("2"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);

    let mut h = HeaderMap::new();
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    strip_hop_by_hop(&mut h);
    assert!(h.contains_key(header::TE), "gRPC needs te: trailers");
}

#[test]
fn connection_naming_only_hop_by_hop_names_takes_them_and_nothing_else() {
    // The quick path (no token looked up): what it names goes anyway.
    let mut h = HeaderMap::new();
    h.append(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
    h.append(header::CONNECTION, HeaderValue::from_static(" upgrade ,,"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert("close", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["close", "te"]);

    // `te` and `close` named by Connection go, as every other name.
    for token in ["te", "close", "TE, keep-alive"] {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_str(token).unwrap());
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("close", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let gone = if token == "close" { "close" } else { "te" };
        assert!(!h.contains_key(gone), "{token}: {h:?}");
        assert_eq!(h.len(), 1, "{token}: {h:?}");
    }
}

#[test]
fn addresses_as_text() {
    for ip in [
        "0.0.0.0",
        "127.0.0.1",
        "10.20.255.9",
        "192.168.100.1",
        "::1",
        "2001:db8::7",
    ] {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(IpText::default().of(parsed), ip);
    }
    let mut h = HeaderMap::new();
    let id = HeaderValue::from_static("id");
    let added = forwarded(
        &mut h,
        &client_text("::1".parse().unwrap()),
        "https",
        None,
        id,
    );
    let fields: Vec<_> = added.fields().collect();
    assert_eq!(
        fields[0],
        (&X_FORWARDED_FOR, &HeaderValue::from_static("::1"))
    );
    assert_eq!(fields.len(), 3, "no X-Forwarded-Host without a host");
}

#[test]
fn nothing_to_strip_leaves_the_map_alone() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("a"));
    h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 2);
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 2);
}

#[test]
fn forwarded_headers() {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let id = HeaderValue::from_static("id-1");
    let host = HeaderValue::from_static("api.example.com");
    let added = forwarded(
        &mut h,
        &client_text("127.0.0.1".parse().unwrap()),
        "http",
        Some(&host),
        id,
    );
    assert_eq!(h.len(), 1, "the map is left as it was");
    let mut all = h.clone();
    added.insert_into(&mut all);
    assert_eq!(all[&X_FORWARDED_FOR], "127.0.0.1");
    assert_eq!(all[&X_FORWARDED_PROTO], "http");
    assert_eq!(all[&X_FORWARDED_HOST], "api.example.com");
    assert_eq!(all[&X_REQUEST_ID], "id-1");
    assert_eq!(all.len(), 5);
}

#[test]
fn what_the_client_sent_of_them_is_replaced() {
    let mut h = HeaderMap::new();
    for (name, value) in [
        (&X_FORWARDED_FOR, "10.0.0.1"),
        (&X_FORWARDED_FOR, "10.0.0.2"),
        (&X_FORWARDED_PROTO, "https"),
        (&X_FORWARDED_HOST, "spoofed"),
        (&X_REQUEST_ID, "client-id"),
        (
            &TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ] {
        h.append(name, HeaderValue::from_static(value));
    }
    h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let id = HeaderValue::from_static("id-2");
    let added = forwarded(
        &mut h,
        &client_text("127.0.0.1".parse().unwrap()),
        "http",
        None,
        id,
    );
    assert_eq!(h.len(), 1, "only the client's own fields are left: {h:?}");
    let fields: Vec<_> = added
        .fields()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("x-forwarded-for", "10.0.0.1, 10.0.0.2, 127.0.0.1"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "id-2"),
        ]
    );
}

#[test]
fn hop_by_hop_is_the_list_te_and_transfer_encoding() {
    for name in &HOP_BY_HOP {
        assert!(is_hop_by_hop(name), "{name}");
    }
    assert!(is_hop_by_hop(&header::TE));
    assert!(is_hop_by_hop(&header::TRANSFER_ENCODING));
    for name in [&header::CONTENT_LENGTH, &header::HOST, &X_FORWARDED_FOR] {
        assert!(!is_hop_by_hop(name), "{name}");
    }
}

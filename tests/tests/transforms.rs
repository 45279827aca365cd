//! Body and head transforms end to end, through a real control plane and
//! data plane: request-transformer edits headers, query parameters and
//! JSON fields the upstream sees (and leaves other bodies alone);
//! response-transformer edits the echo's answer; json-xml converts a JSON
//! document to XML on its way up and back to the same JSON through another
//! route, converts answers, and refuses malformed or hostile XML with a 400
//! before anything reaches the upstream.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::raw::{RawConn, Read};
use turnpike_tests::{
    Answer, ControlPlane, CountingUpstream, DataPlane, Db, Echo, Http, assert_status,
    fresh_database_url,
};

async fn created(cp: &ControlPlane, path: &str, body: Value) -> u64 {
    let a = cp.api(Method::POST, path, Some(body)).await;
    assert_status(&a, StatusCode::CREATED);
    a.version()
}

/// A route `/{name}` to `upstream`, with one plugin.
async fn route(cp: &ControlPlane, name: &str, upstream: &str, plugin: Value) -> u64 {
    created(
        cp,
        "/routes",
        json!({"name": name, "paths": [format!("/{name}")], "upstream": upstream}),
    )
    .await;
    let mut plugin = plugin;
    plugin["route"] = json!(name);
    created(cp, "/plugins", plugin).await
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer's `Content-Length` is its body's length.
fn framed(a: &Answer) {
    assert_eq!(
        header(a, "content-length").and_then(|l| l.parse::<usize>().ok()),
        Some(a.body.len()),
        "{a:?}"
    );
    assert!(header(a, "transfer-encoding").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformers_and_json_xml() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let counting = CountingUpstream::start().await;
    let echo = Echo::start("echo-t").await;
    created(
        &cp,
        "/upstreams",
        json!({"name": "counting", "targets": [{"address": counting.addr}]}),
    )
    .await;
    created(
        &cp,
        "/upstreams",
        json!({"name": "echo", "targets": [{"address": echo.addr}]}),
    )
    .await;
    route(&cp, "rt", "counting", json!({"name": "request-transformer", "config": {
        "remove": {"headers": ["x-debug"], "querystring": ["debug"], "json": ["password"]},
        "rename": {"headers": {"x-old": "x-new"}, "querystring": {"q": "search"}, "json": {"user": "username"}},
        "replace": {"headers": {"user-agent": "turnpike"}, "json": {"role": "guest"}},
        "add": {"headers": {"x-env": "prod"}, "querystring": {"v": "2"}, "json": {"tenant": "acme"}}
    }}))
    .await;
    route(&cp, "resp", "echo", json!({"name": "response-transformer", "config": {
        "remove": {"json": ["headers"]},
        "rename": {"json": {"name": "service"}},
        "replace": {"headers": {"content-type": "application/vnd.echo+json"}, "json": {"method": "VERB"}},
        "add": {"headers": {"x-gateway": "turnpike"}, "json": {"gateway": {"name": "turnpike"}}}
    }}))
    .await;
    route(
        &cp,
        "xml",
        "echo",
        json!({"name": "json-xml", "config": {
            "request": "json_to_xml", "response": "json_to_xml", "root_element": "order"
        }}),
    )
    .await;
    route(
        &cp,
        "json",
        "echo",
        json!({"name": "json-xml", "config": {"request": "xml_to_json"}}),
    )
    .await;
    route(
        &cp,
        "guarded",
        "counting",
        json!({"name": "json-xml", "config": {"request": "xml_to_json"}}),
    )
    .await;
    route(
        &cp,
        "small",
        "counting",
        json!({"name": "json-xml", "config": {"request": "xml_to_json"}}),
    )
    .await;
    let v = created(
        &cp,
        "/plugins",
        json!({"name": "request-size-limit", "route": "small", "config": {"max_bytes": 1000}}),
    )
    .await;
    dp.wait_for_version(v).await;
    let http = Http::default();
    let send = |path: &str, headers: &[(&str, &str)], body: &str| {
        let url = format!("{}{path}", dp.proxy);
        let http = http.clone();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = Bytes::from(body.to_owned());
        async move {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            http.send_bytes(Method::POST, &url, &h, body).await.unwrap()
        }
    };
    let json_type = ("content-type", "application/json");
    let xml_type = ("content-type", "application/xml");

    // request-transformer: headers, query and JSON fields, as the upstream
    // sees them, with the body's new length.
    let a = send(
        "/rt/a?q=rust&debug=1&page=2",
        &[
            json_type,
            ("x-debug", "1"),
            ("x-old", "o"),
            ("user-agent", "curl"),
        ],
        r#"{"user":"ana","password":"secret","role":"admin","n":[1,2]}"#,
    )
    .await;
    assert_status(&a, StatusCode::OK);
    let seen = &counting.matching("/rt/a")[0];
    assert_eq!(seen.target, "/rt/a?search=rust&page=2&v=2");
    assert_eq!(seen.header("x-debug"), None);
    assert_eq!(seen.header("x-old"), None);
    assert_eq!(seen.header("x-new"), Some("o"));
    assert_eq!(seen.header("user-agent"), Some("turnpike"));
    assert_eq!(seen.header("x-env"), Some("prod"));
    let body = std::str::from_utf8(&seen.body).unwrap();
    assert_eq!(
        body,
        r#"{"username":"ana","role":"guest","n":[1,2],"tenant":"acme"}"#
    );
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    // A body that is not JSON goes up untouched (headers still edited).
    let a = send(
        "/rt/text",
        &[("content-type", "text/plain"), ("x-old", "o")],
        "user=ana",
    )
    .await;
    assert_status(&a, StatusCode::OK);
    let seen = &counting.matching("/rt/text")[0];
    assert_eq!(seen.body, b"user=ana");
    assert_eq!(seen.header("x-new"), Some("o"));

    // response-transformer: the echo's answer edited, headers and fields.
    let a = dp.get("/resp/a?x=1").await;
    assert_status(&a, StatusCode::OK);
    framed(&a);
    assert_eq!(header(&a, "x-gateway"), Some("turnpike"));
    assert_eq!(
        header(&a, "content-type"),
        Some("application/vnd.echo+json")
    );
    assert_eq!(
        a.json(),
        json!({"service": "echo-t", "method": "VERB", "path": "/resp/a", "query": "x=1",
               "body": "", "gateway": {"name": "turnpike"}})
    );

    // json-xml, a round trip: a JSON document goes up as XML (and the
    // echo's JSON answer comes back as XML); that XML sent to the route
    // converting XML to JSON gives the echo's answer, whose body is the
    // XML the upstream saw; sent again, it gives the original document.
    let doc = json!({
        "@id": "7",
        "customer": {"name": "Zoë <ünal> & \"co\"", "city": "東京"},
        "line": [{"@sku": "a-1", "qty": "2"}, {"@sku": "b-2", "qty": "1"}],
        "note": "",
    });
    let a = send(
        "/xml",
        &[json_type, ("accept-encoding", "gzip")],
        &doc.to_string(),
    )
    .await;
    assert_status(&a, StatusCode::OK);
    framed(&a);
    assert_eq!(header(&a, "content-type"), Some("application/xml"));
    let answer_xml = String::from_utf8(a.body.to_vec()).unwrap();
    assert!(
        answer_xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><order>"),
        "{answer_xml}"
    );
    assert!(answer_xml.contains("<method>POST</method>"), "{answer_xml}");

    let a = send("/json", &[xml_type], &answer_xml).await;
    assert_status(&a, StatusCode::OK);
    let echoed: Value = serde_json::from_str(a.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["name"], "echo-t");
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["headers"]["content-type"], "application/xml");
    assert!(
        echoed["headers"].get("accept-encoding").is_none(),
        "routes rewriting answers ask for them uncompressed: {echoed}"
    );
    let upstream_xml = echoed["body"].as_str().unwrap();
    assert!(
        upstream_xml.contains(
            "<order id=\"7\"><customer><city>東京</city><name>Zoë &lt;ünal&gt; &amp; &quot;co&quot;</name>"
        ),
        "{upstream_xml}"
    );
    assert_eq!(
        echoed["headers"]["content-length"],
        upstream_xml.len().to_string()
    );
    let a = send(
        "/json",
        &[("content-type", "text/xml; charset=utf-8")],
        upstream_xml,
    )
    .await;
    assert_status(&a, StatusCode::OK);
    assert_eq!(a.json()["headers"]["content-type"], "application/json");
    let round_trip: Value = serde_json::from_str(a.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(round_trip, doc);

    // Malformed or hostile XML: 400 with a reason, nothing upstream.
    let before = counting.requests().len();
    for (xml, reason) in [
        ("<order><line></order>", "malformed XML"),
        (
            "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>",
            "DOCTYPE refused",
        ),
        ("<a>&lol;</a>", "undefined entity"),
        (
            &("<a>".repeat(1000) + &"</a>".repeat(1000)),
            "nested deeper than 64",
        ),
    ] {
        let a = send("/guarded/x", &[xml_type], xml).await;
        assert_status(&a, StatusCode::BAD_REQUEST);
        let message = a.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(reason), "{xml:.60}: {message}");
    }
    // A compressed body cannot be converted: 415.
    let a = send(
        "/guarded/gz",
        &[xml_type, ("content-encoding", "gzip")],
        "\x1f\u{8b}",
    )
    .await;
    assert_status(&a, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Past the 8 MiB a conversion reads: 413 before the body is read
    // (raw, since the answer comes while a client would still be sending).
    let addr = dp.proxy.trim_start_matches("http://");
    let mut conn = RawConn::connect(addr).await;
    conn.send(
        format!(
            "POST /guarded/big HTTP/1.1\r\nhost: x\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n<a>",
            9 << 20
        )
        .as_bytes(),
    )
    .await;
    let Read::Response(a) = conn.read().await else {
        panic!("closed without an answer")
    };
    assert_eq!(a.status, 413, "{a:?}");
    assert!(
        a.json()["message"].as_str().unwrap().contains("8388608"),
        "{a:?}"
    );
    // Past the route's smaller limit (request-size-limit), streamed: 413.
    let mut conn = RawConn::connect(addr).await;
    let chunk = "x".repeat(600);
    conn.send(
        format!(
            "POST /small/streamed HTTP/1.1\r\nhost: x\r\ncontent-type: application/xml\r\n\
             transfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let Read::Response(a) = conn.read().await else {
        panic!("closed without an answer")
    };
    assert_eq!(a.status, 413, "{a:?}");
    assert!(
        a.json()["message"].as_str().unwrap().contains("1000"),
        "{a:?}"
    );
    assert_eq!(
        counting.requests().len(),
        before,
        "nothing reached the upstream"
    );
    // Not XML: passed on untouched.
    let a = send("/guarded/plain", &[("content-type", "text/plain")], "<a>").await;
    assert_status(&a, StatusCode::OK);
    assert_eq!(counting.matching("/guarded/plain")[0].body, b"<a>");
}

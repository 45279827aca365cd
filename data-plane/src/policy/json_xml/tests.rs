use serde_json::json;

use super::*;

fn to_xml(json: &str) -> Result<String, BodyError> {
    json_to_xml(json.as_bytes(), "root").map(|x| String::from_utf8(x).unwrap())
}

fn to_json(xml: &str) -> Result<serde_json::Value, BodyError> {
    xml_to_json(xml.as_bytes()).map(|j| serde_json::from_slice(&j).unwrap())
}

fn refused(xml: &str, expect: &str) {
    match xml_to_json(xml.as_bytes()) {
        Err(BodyError::Invalid(m)) => assert!(m.contains(expect), "{xml:.80}: {m}"),
        other => panic!("{xml:.80}: expected a refusal, got {other:?}"),
    }
}

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

#[test]
fn json_to_xml_mapping() {
    let xml = to_xml(
        r##"{"@id":"7","order":{"@currency":"EUR","#text":"ok","line":[{"sku":"a"},{"sku":"b"}]},
            "n":1.5,"yes":true,"none":null,"empty":"","list":[[1,2],[]],"esc":"<&>\"'\r"}"##,
    )
    .unwrap();
    assert_eq!(
        xml,
        format!(
            "{DECL}<root id=\"7\"><order currency=\"EUR\">ok<line><sku>a</sku></line><line><sku>b</sku></line></order>\
             <n>1.5</n><yes>true</yes><none/><empty/><list><item>1</item><item>2</item></list><list></list>\
             <esc>&lt;&amp;&gt;&quot;&apos;&#13;</esc></root>"
        )
    );
    // A document that is an array or a scalar.
    assert_eq!(
        to_xml("[1,{\"a\":\"b\"}]").unwrap(),
        format!("{DECL}<root><item>1</item><item><a>b</a></item></root>")
    );
    assert_eq!(to_xml("\"x\"").unwrap(), format!("{DECL}<root>x</root>"));
    // Attribute values keep their whitespace through attribute normalisation.
    assert_eq!(
        to_xml(r#"{"@a":"1\n\t2"}"#).unwrap(),
        format!("{DECL}<root a=\"1&#10;&#9;2\"/>")
    );
}

#[test]
fn round_trip_json_xml_json() {
    let doc = json!({
        "@version": "2",
        "@xmlns:p": "urn:example",
        "customer": {
            "@id": "c-1",
            "name": "Zoë Ünal 日本 🚀",
            "p:note": "a < b && c > d \"quoted\" 'single'",
            "address": {"street": "1 Main St", "city": "Paris"},
        },
        "items": [
            {"@sku": "x&y", "#text": "first", "qty": "1"},
            {"@sku": "z", "qty": "2", "tags": ["red", "blue"]},
        ],
        "comment": "line 1\nline 2\r\n\ttabbed",
        "empty": "",
    });
    let xml = json_to_xml(doc.to_string().as_bytes(), "order").unwrap();
    let text = String::from_utf8(xml.clone()).unwrap();
    assert!(
        text.contains("<order version=\"2\" xmlns:p=\"urn:example\">"),
        "{text}"
    );
    assert!(
        text.contains("<p:note>a &lt; b &amp;&amp; c &gt; d"),
        "{text}"
    );
    let back: serde_json::Value = serde_json::from_slice(&xml_to_json(&xml).unwrap()).unwrap();
    assert_eq!(back, doc);
    // And the order of fields survives (serde_json's Value would sort them).
    let again = json_to_xml(&xml_to_json(&xml).unwrap(), "order").unwrap();
    assert_eq!(again, xml);
}

#[test]
fn xml_to_json_mapping() {
    let xml = r#"<?xml version="1.0"?>
        <!-- a comment --><?pi data?>
        <order id="7" note="&lt;&#x41;&#66;&quot;">
          <line>one</line>
          <line sku="b"/>
          <total>  12.50 </total>
          <p>Hello <b>bold</b> world</p>
          <raw><![CDATA[<not markup> & co]]></raw>
          <ent>&amp;&lt;&gt;&apos;&quot;&#233;&#x1F680;</ent>
          <blank/>
          <line>three</line>
        </order>"#;
    assert_eq!(
        to_json(xml).unwrap(),
        json!({
            "@id": "7",
            "@note": "<AB\"",
            "line": ["one", {"@sku": "b"}, "three"],
            "total": "  12.50 ",
            "p": {"#text": "Hello  world", "b": "bold"},
            "raw": "<not markup> & co",
            "ent": "&<>'\"é🚀",
            "blank": "",
        })
    );
    // The document element's name does not matter; a text-only root is a string.
    assert_eq!(to_json("<anything>hi</anything>").unwrap(), json!("hi"));
    // Line endings are normalised as XML says; a BOM is skipped.
    assert_eq!(to_json("\u{feff}<a>x\r\ny</a>").unwrap(), json!("x\ny"));
    assert_eq!(to_json("<a><b>1</b></a>").unwrap(), json!({"b": "1"}));
}

#[test]
fn doctype_and_entities_are_refused() {
    refused(
        "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
        "DOCTYPE refused",
    );
    refused("<!DOCTYPE a SYSTEM \"a.dtd\"><a/>", "DOCTYPE refused");
    refused(
        "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><a>&xxe;</a>",
        "DOCTYPE refused",
    );
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n".to_owned()
        + &(1..10)
            .map(|i| {
                let prev = if i == 1 {
                    "lol".to_owned()
                } else {
                    format!("lol{}", i - 1)
                };
                format!(" <!ENTITY lol{i} \"{}\">\n", format!("&{prev};").repeat(10))
            })
            .collect::<String>()
        + "]>\n<lolz>&lol9;</lolz>";
    refused(&laughs, "DOCTYPE refused");
    // Without a DOCTYPE, nothing but the predefined entities is defined.
    refused("<a>&lol9;</a>", "undefined entity &lol9;");
    refused("<a b=\"&x;\"/>", "attribute value");
    refused("<a>&#0;</a>", "character reference");
    refused("<a>&#1;</a>", "U+0001");
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| "<a>".repeat(n) + &"</a>".repeat(n);
    assert!(xml_to_json(deep(MAX_DEPTH).as_bytes()).is_ok());
    refused(&deep(MAX_DEPTH + 1), "nested deeper than 64");
    refused(&deep(1000), "nested deeper than 64");
    refused(&"<a>".repeat(100_000), "nested deeper than 64");
    // JSON: the root plus 63 levels fit; JSON past serde_json's limit does
    // not even parse.
    let nested = |n: usize| "{\"a\":".repeat(n) + "1" + &"}".repeat(n);
    assert!(json_to_xml(nested(MAX_DEPTH - 1).as_bytes(), "r").is_ok());
    let e = json_to_xml(nested(MAX_DEPTH).as_bytes(), "r").unwrap_err();
    assert_eq!(
        e,
        BodyError::Invalid("nested deeper than 64 elements".into())
    );
    let e = json_to_xml(nested(1000).as_bytes(), "r").unwrap_err();
    assert!(
        matches!(&e, BodyError::Invalid(m) if m.contains("recursion limit")),
        "{e:?}"
    );
}

#[test]
fn malformed_xml_is_refused() {
    refused("<a><b></a>", "malformed XML");
    refused("<a>", "malformed XML");
    refused("<a/><b/>", "after the root element");
    refused("text<a/>", "text outside the root element");
    refused("<a/>tail", "text outside the root element");
    refused("", "no root element");
    refused("<!-- only a comment -->", "no root element");
    refused("<a x=\"1\" x=\"2\"/>", "malformed XML attribute");
    refused("<a x=1/>", "malformed XML");
    refused("</a>", "malformed XML");
    refused("<a><!-- a -- b --></a>", "malformed XML");
    refused(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
        "only UTF-8",
    );
    match xml_to_json(b"<a>\xff</a>") {
        Err(BodyError::Invalid(m)) => assert!(m.contains("UTF-8"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_that_cannot_be_xml_is_refused() {
    for (json, expect) in [
        ("{", "invalid JSON"),
        ("{\"a\":1,}", "invalid JSON"),
        ("1e400", "invalid JSON"),
        ("{\"a b\":1}", "'a b' is not an XML name"),
        ("{\"1a\":1}", "not an XML name"),
        ("{\"#other\":1}", "not an XML name"),
        ("{\"@\":1}", "not an XML name"),
        ("{\"@a\":{\"b\":1}}", "attribute 'a' must be"),
        ("{\"@a\":1,\"@a\":2}", "given twice"),
        ("{\"#text\":[1]}", "#text must be"),
        ("{\"a\":\"\\u0001\"}", "U+0001"),
        ("{\"a\":\"\\uffff\"}", "U+FFFF"),
    ] {
        match json_to_xml(json.as_bytes(), "root") {
            Err(BodyError::Invalid(m)) => assert!(m.contains(expect), "{json}: {m}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    // Names repeated in XML can make a document grow: bounded.
    let key = "k".repeat(1000);
    let big = format!("{{\"{key}\":[{}1]}}", "1,".repeat(10_000));
    assert_eq!(
        json_to_xml(big.as_bytes(), "root").unwrap_err(),
        BodyError::TooLarge
    );
}

#[test]
fn converters_pick_their_bodies_and_fix_the_content_type() {
    let policy = JsonXml::new(
        serde_json::from_value(
            json!({"request": "xml_to_json", "response": "json_to_xml", "root_element": "doc"}),
        )
        .unwrap(),
    );
    let (req, resp) = (
        policy.request_body().unwrap(),
        policy.response_body().unwrap(),
    );
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    assert!(req.wants(&h) && !resp.wants(&h));
    let out = req.rewrite(&mut h, b"<x><a>1</a></x>").unwrap().unwrap();
    assert_eq!(out, br#"{"a":"1"}"#);
    assert_eq!(h[CONTENT_TYPE], "application/json");
    assert!(!req.wants(&h) && resp.wants(&h));
    let out = resp.rewrite(&mut h, &out).unwrap().unwrap();
    assert_eq!(out, format!("{DECL}<doc><a>1</a></doc>").as_bytes());
    assert_eq!(h[CONTENT_TYPE], "application/xml");
    assert_eq!(
        req.rewrite(&mut h, b"<x>").unwrap_err().rejection().status,
        http::StatusCode::BAD_REQUEST
    );

    let only_requests =
        JsonXml::new(serde_json::from_value(json!({"request": "json_to_xml"})).unwrap());
    assert!(only_requests.response_body().is_none());
}

#[test]
fn many_children_group_by_name() {
    let xml = format!("<r>{}</r>", "<a>1</a><b>2</b>".repeat(10));
    let v = to_json(&xml).unwrap();
    assert_eq!(v["a"], json!(vec!["1"; 10]));
    assert_eq!(v["b"], json!(vec!["2"; 10]));
    let names: Vec<String> = (0..20).map(|i| format!("<n{i}/>")).collect();
    let v = to_json(&format!("<r>{}<n3>x</n3></r>", names.concat())).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 20);
    assert_eq!(v["n3"], json!(["", "x"]));
}

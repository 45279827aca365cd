//! Each target's attempts and failures on the data plane's `/metrics`.

use super::*;

/// The series of metric `name` in Prometheus text: labels and value.
fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let labels = labels
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The value of `name{upstream, target}`; panics when the series is absent.
fn value(text: &str, name: &str, upstream: &str, target: &str) -> f64 {
    series(text, name)
        .into_iter()
        .find(|(l, _)| l["upstream"] == upstream && l["target"] == target)
        .unwrap_or_else(|| panic!("no {name}{{upstream={upstream},target={target}}} in:\n{text}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_targets_attempts_and_failures() {
    let s = setup().await;
    let m1 = Echo::start("m1").await;
    let m2 = Echo::start("m2").await;
    let dead = format!("127.0.0.1:{}", free_port());
    let addrs = [m1.addr.as_str(), m2.addr.as_str(), dead.as_str()];
    let v = s
        .create(
            json!({
                "name": "metered",
                "retries": 1,
                "targets": addrs.map(|a| json!({"address": a}))
            }),
            "/metered",
        )
        .await;
    s.dp.wait_for_version(v).await;

    let got = s.tally("/metered", 12).await;
    let text = s.metrics().await;
    let requests = "turnpike_upstream_target_requests_total";
    let failures = "turnpike_upstream_target_failures_total";
    for (e, addr) in [(&m1, &m1.addr), (&m2, &m2.addr)] {
        assert_eq!(
            value(&text, requests, "metered", addr),
            count(&got, &e.name) as f64,
            "{got:?}\n{text}"
        );
        assert_eq!(value(&text, failures, "metered", addr), 0.0, "{text}");
        assert_eq!(
            value(&text, "turnpike_upstream_target_healthy", "metered", addr),
            1.0
        );
        assert_eq!(
            value(&text, "turnpike_upstream_target_in_flight", "metered", addr),
            0.0
        );
    }
    assert_eq!(count(&got, "m1") + count(&got, "m2"), 12, "{got:?}");
    // Each attempt on the dead target failed and was retried on a live one.
    let dead_requests = value(&text, requests, "metered", &dead);
    assert!(dead_requests >= 1.0, "{text}");
    assert_eq!(
        value(&text, failures, "metered", &dead),
        dead_requests,
        "{text}"
    );
    // The same counts as /upstreams.
    let counted = s.requests("metered", &addrs).await;
    for (addr, n) in addrs.iter().zip(&counted) {
        assert_eq!(value(&text, requests, "metered", addr), *n as f64, "{addr}");
    }
}

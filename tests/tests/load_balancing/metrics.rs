//! Each target's attempts and failures on the data plane's `/metrics`.

use turnpike_tests::prometheus::Exposition;

use super::*;

/// The value of `name{upstream, target}`; panics when the series is absent.
fn value(m: &Exposition, name: &str, upstream: &str, target: &str) -> f64 {
    m.value(name, &[("upstream", upstream), ("target", target)])
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
    let m = Exposition::parse(&text);
    let requests = "turnpike_upstream_target_requests_total";
    let failures = "turnpike_upstream_target_failures_total";
    for (e, addr) in [(&m1, &m1.addr), (&m2, &m2.addr)] {
        assert_eq!(
            value(&m, requests, "metered", addr),
            count(&got, &e.name) as f64,
            "{got:?}\n{text}"
        );
        assert_eq!(value(&m, failures, "metered", addr), 0.0, "{text}");
        assert_eq!(
            value(&m, "turnpike_upstream_target_healthy", "metered", addr),
            1.0
        );
        assert_eq!(
            value(&m, "turnpike_upstream_target_in_flight", "metered", addr),
            0.0
        );
    }
    assert_eq!(count(&got, "m1") + count(&got, "m2"), 12, "{got:?}");
    // Each attempt on the dead target failed and was retried on a live one.
    let dead_requests = value(&m, requests, "metered", &dead);
    assert!(dead_requests >= 1.0, "{text}");
    assert_eq!(
        value(&m, failures, "metered", &dead),
        dead_requests,
        "{text}"
    );
    // The same counts as /upstreams.
    let counted = s.requests("metered", &addrs).await;
    for (addr, n) in addrs.iter().zip(&counted) {
        assert_eq!(value(&m, requests, "metered", addr), *n as f64, "{addr}");
    }
}

//! The balancing algorithms end to end: least connections and latency,
//! consistent hashing across reloads and removals, weighted round robin.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_and_latency_favour_the_fast_target() {
    let s = setup().await;
    let fast = Echo::start("fast").await;
    let slow = SlowUpstream::start("slow", Duration::from_millis(300)).await;
    let targets = json!([{"address": fast.addr}, {"address": slow.addr}]);
    s.create(
        json!({"name": "lc", "algorithm": "least_connections", "targets": targets}),
        "/lc",
    )
    .await;
    let v = s
        .create(
            json!({"name": "lat", "algorithm": "latency", "targets": targets}),
            "/lat",
        )
        .await;
    s.dp.wait_for_version(v).await;

    // Least connections: the slow target's requests pile up in flight, so
    // the fast one takes the next ones. (Forty requests sent in one burst
    // would all be picked before any answer came back, with equal counts
    // in flight: round robin. Eight clients in a closed loop keep the
    // counts apart.)
    let lc = s.tally_concurrent("/lc", 8, 5).await;
    assert_eq!(count(&lc, "fast") + count(&lc, "slow"), 40, "{lc:?}");
    assert!(
        count(&lc, "fast") >= 2 * count(&lc, "slow"),
        "least_connections: {lc:?}"
    );

    // Latency: once both targets have a measured response time (an
    // unmeasured target idle costs 0, so two requests measure both), the
    // slow one costs 300 ms a request and is chosen only when the fast
    // one is far busier.
    let warm = s.tally("/lat", 4).await;
    assert!(count(&warm, "slow") >= 1, "warm-up measured both: {warm:?}");
    let lat = s.tally_concurrent("/lat", 8, 5).await;
    assert_eq!(count(&lat, "fast") + count(&lat, "slow"), 40, "{lat:?}");
    assert!(count(&lat, "fast") >= 34, "latency: {lat:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_users_on_their_target_across_reloads_and_removals() {
    let s = setup().await;
    let echoes = [
        Echo::start("h1").await,
        Echo::start("h2").await,
        Echo::start("h3").await,
    ];
    let targets: Vec<Value> = echoes.iter().map(|e| json!({"address": e.addr})).collect();
    let v = s
        .create(
            json!({
                "name": "hash",
                "algorithm": "consistent_hash",
                "hash_on": {"header": "x-user"},
                "targets": targets
            }),
            "/hash",
        )
        .await;
    s.dp.wait_for_version(v).await;

    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    let mut placed: HashMap<&str, String> = HashMap::new();
    for u in &users {
        let first = s.name("/hash", &[("x-user", u)]).await;
        for _ in 0..4 {
            let again = s.name("/hash", &[("x-user", u)]).await;
            assert_eq!(again, first, "{u} moved without any change");
        }
        placed.insert(u, first);
    }
    let used: std::collections::BTreeSet<&String> = placed.values().collect();
    assert!(used.len() >= 2, "20 users all on one target: {used:?}");

    // A change that does not touch the upstream moves nobody.
    let r =
        s.cp.api(
            Method::POST,
            "/routes",
            Some(json!({"name": "unrelated", "paths": ["/unrelated"], "upstream": "hash"})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    s.dp.wait_for_version(r.version()).await;
    for u in &users {
        let now = s.name("/hash", &[("x-user", u)]).await;
        assert_eq!(
            now,
            placed[u.as_str()],
            "{u} moved after an unrelated change"
        );
    }

    // Removing h3: its users go elsewhere, the others mostly stay.
    let patch =
        s.cp.api(
            Method::PATCH,
            "/upstreams/hash",
            Some(json!({"targets": &targets[..2]})),
        )
        .await;
    assert_status(&patch, StatusCode::OK);
    s.dp.wait_for_version(patch.version()).await;
    let (mut kept, mut stayed) = (0, 0);
    for u in &users {
        let now = s.name("/hash", &[("x-user", u)]).await;
        assert_ne!(now, "h3", "{u} still on the removed target");
        if placed[u.as_str()] != "h3" {
            kept += 1;
            if now == placed[u.as_str()] {
                stayed += 1;
            }
        }
    }
    assert!(
        kept >= 1,
        "no user was on the remaining targets: {placed:?}"
    );
    assert!(
        stayed * 10 >= kept * 8,
        "only {stayed} of {kept} users of the remaining targets stayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_the_weights_exactly() {
    let s = setup().await;
    let light = Echo::start("light").await;
    let heavy = Echo::start("heavy").await;
    let v = s
        .create(
            json!({
                "name": "wrr",
                "algorithm": "weighted_round_robin",
                "targets": [
                    {"address": light.addr, "weight": 1},
                    {"address": heavy.addr, "weight": 3}
                ]
            }),
            "/wrr",
        )
        .await;
    s.dp.wait_for_version(v).await;
    // Sequential requests walk the smooth sequence (period 4), so any 40
    // of them split exactly 10 / 30.
    let got = s.tally("/wrr", 40).await;
    assert_eq!(count(&got, "light"), 10, "{got:?}");
    assert_eq!(count(&got, "heavy"), 30, "{got:?}");
}

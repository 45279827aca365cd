//! `GET /metrics` on the admin listener, parsed as Prometheus text: admin
//! requests counted by route template and status, the published version,
//! snapshot builds, the fleet by status, and the push latency a scripted
//! data plane's ACK produces over real gRPC (`#[sqlx::test]`).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use support::prom_text::Exposition;
use support::{ADMIN, Api, READER};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tower::ServiceExt;
use turnpike_control_plane::cluster::{self, ClusterService};
use turnpike_control_plane::secret;
use turnpike_proto as proto;
use turnpike_proto::config_discovery_client::ConfigDiscoveryClient;
use turnpike_proto::control_plane_message::Message as Down;
use turnpike_proto::data_plane_message::Message as Up;

const CLUSTER_TOKEN: &str = "test-cluster-token-0123456789";

#[test]
fn the_parser_reads_labels_escapes_and_special_values() {
    let text = "# HELP a_total x\n# TYPE a counter\na_total{op=\"GET /x/{key}\",q=\"a\\\"b\\\\c\\nd\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n# TYPE g gauge\ng -1 123\n# EOF\n";
    let e = Exposition::parse(text);
    assert_eq!(
        e.value("a_total", &[("op", "GET /x/{key}"), ("q", "a\"b\\c\nd")]),
        3.0
    );
    assert_eq!(e.value("h_bucket", &[("le", "+Inf")]), 2.0);
    assert_eq!(e.value("g", &[]), -1.0);
    assert_eq!(e.types["h"], "histogram");
    let bad = std::panic::catch_unwind(|| Exposition::parse("x 1\n# EOF\n"));
    assert!(bad.is_err(), "a sample without a TYPE is refused");
}

// ---- a scripted data plane over gRPC ----

struct FakeDp {
    tx: mpsc::Sender<proto::DataPlaneMessage>,
    inbound: tonic::Streaming<proto::ControlPlaneMessage>,
}

impl FakeDp {
    async fn connect(url: &str) -> FakeDp {
        let auth: MetadataValue<_> = format!("Bearer {CLUSTER_TOKEN}").parse().unwrap();
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client =
            ConfigDiscoveryClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", auth.clone());
                Ok(r)
            });
        let (tx, rx) = mpsc::channel(8);
        let hello = proto::Hello {
            node_id: "metrics-dp".to_owned(),
            ..Default::default()
        };
        let msg = proto::DataPlaneMessage {
            message: Some(Up::Hello(hello)),
        };
        tx.send(msg).await.unwrap();
        let inbound = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        FakeDp { tx, inbound }
    }

    /// Reads the next snapshot and ACKs it; returns its version.
    async fn ack_next(&mut self) -> u64 {
        let msg = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("a config message within 10 s")
            .unwrap()
            .unwrap();
        let Some(Down::Snapshot(s)) = msg.message else {
            panic!("expected a snapshot (no delta feature declared)");
        };
        let ack = proto::Ack {
            version: s.version,
            hash: s.hash,
        };
        let msg = proto::DataPlaneMessage {
            message: Some(Up::Ack(ack)),
        };
        self.tx.send(msg).await.unwrap();
        s.version
    }
}

async fn serve_cluster(api: &Api) -> (String, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = ClusterService::new(
        api.state.clone(),
        secret::digest(CLUSTER_TOKEN),
        proto::ClusterSecrets::default(),
    );
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(cluster::serve(listener, service, None, shutdown));
    (url, stop)
}

/// `GET /metrics` without a token: its content type and parsed body.
async fn scrape(api: &Api) -> (Exposition, String) {
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (Exposition::parse(&text), text)
}

const REQUESTS: &str = "turnpike_admin_requests_total";

fn requests(e: &Exposition, operation: &str, status: &str) -> f64 {
    e.get(REQUESTS, &[("operation", operation), ("status", status)])
        .unwrap_or(0.0)
}

#[sqlx::test(migrations = false)]
async fn metrics_count_admin_calls_builds_the_fleet_and_push_latency(pool: PgPool) {
    let a = Api::new(pool).await;
    let (url, _stop) = serve_cluster(&a).await;

    // A data plane connects and ACKs the version that was current before
    // its stream opened: no push to measure.
    let mut dp = FakeDp::connect(&url).await;
    let first = dp.ack_next().await;
    assert_eq!(first, a.state.publisher.current().version);

    // Admin calls: 201, 403, 404 (by template and unmatched), 401.
    let up = json!({"name": "users", "targets": [{"address": "127.0.0.1:9001"}]});
    let created = a
        .call(Method::POST, "/api/v1/upstreams", Some(up.clone()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let version = created.version.unwrap();
    let r = a
        .call_as(Some(READER), Method::POST, "/api/v1/upstreams", Some(up))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for path in ["/api/v1/upstreams/nope", "/api/v1/upstreams/other"] {
        let r = a.call(Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let r = a.call(Method::GET, "/api/v1/no-such-thing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.call_as(None, Method::GET, "/no-such-page", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .call_as(None, Method::GET, "/api/v1/upstreams", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let config = a.call(Method::GET, "/api/v1/config", None).await;
    assert_eq!(config.status, StatusCode::OK);

    // The data plane gets the new version, published while it was
    // connected, and ACKs it: one push observed.
    assert_eq!(dp.ack_next().await, version);

    // The ACK is recorded after the observation; poll until the fleet
    // gauge shows it too.
    let mut scrapes = 0.0;
    let (e, text) = loop {
        let (e, text) = scrape(&a).await;
        scrapes += 1.0;
        let pushed = e.value("turnpike_config_push_duration_seconds_count", &[]);
        let synced = e.value("turnpike_data_planes", &[("status", "synced")]);
        if pushed == 1.0 && synced == 1.0 {
            break (e, text);
        }
        assert!(
            scrapes < 200.0,
            "no push observed / fleet not synced:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Exact counts per operation and status.
    assert_eq!(requests(&e, "POST /api/v1/upstreams", "201"), 1.0);
    assert_eq!(requests(&e, "POST /api/v1/upstreams", "403"), 1.0);
    assert_eq!(requests(&e, "GET /api/v1/upstreams/{key}", "404"), 2.0);
    assert_eq!(requests(&e, "GET /api/v1/upstreams", "401"), 1.0);
    assert_eq!(requests(&e, "GET /api/v1/config", "200"), 1.0);
    assert_eq!(requests(&e, "unmatched", "404"), 2.0);
    // This scrape is counted once it has answered.
    assert_eq!(requests(&e, "GET /metrics", "200"), scrapes - 1.0);
    let ops: Vec<&str> = e
        .samples
        .iter()
        .filter(|s| s.name == REQUESTS)
        .map(|s| s.labels["operation"].as_str())
        .collect();
    assert!(
        ops.iter()
            .all(|o| !o.contains("nope") && !o.contains("other")),
        "paths never become labels: {ops:?}"
    );
    let histogram = "turnpike_admin_request_duration_seconds_count";
    let op = |o| [("operation", o)];
    assert_eq!(e.value(histogram, &op("POST /api/v1/upstreams")), 2.0);
    assert_eq!(e.value(histogram, &op("GET /api/v1/upstreams/{key}")), 2.0);
    assert_eq!(e.value(histogram, &op("unmatched")), 2.0);
    assert_eq!(e.types["turnpike_admin_requests"], "counter");
    assert_eq!(
        e.types["turnpike_admin_request_duration_seconds"],
        "histogram"
    );

    // Config: the published version, builds of this process (version 1 at
    // start, then the upstream), the size of the last one as `/config`
    // shows it.
    assert_eq!(
        e.value("turnpike_config_published_version", &[]),
        version as f64
    );
    let builds = e.value("turnpike_config_build_duration_seconds_count", &[]);
    assert_eq!(builds, 2.0);
    assert!(e.value("turnpike_config_build_duration_seconds_sum", &[]) > 0.0);
    let bytes = config.body["last_build"]["snapshot_bytes"]
        .as_f64()
        .unwrap();
    assert!(bytes > 0.0);
    assert_eq!(e.value("turnpike_config_last_build_bytes", &[]), bytes);

    // The fleet by status, every status present.
    let fleet = |e: &Exposition, s| e.value("turnpike_data_planes", &[("status", s)]);
    assert_eq!(fleet(&e, "synced"), 1.0);
    for s in ["behind", "error", "disconnected"] {
        assert_eq!(fleet(&e, s), 0.0, "{s}");
    }

    // Push latency: exactly the one version published while connected.
    let push = "turnpike_config_push_duration_seconds";
    assert_eq!(e.value(&format!("{push}_count"), &[]), 1.0);
    assert_eq!(e.value(&format!("{push}_bucket"), &[("le", "+Inf")]), 1.0);
    assert!(e.value(&format!("{push}_sum"), &[]) > 0.0);

    // Nothing secret, no entity name.
    for secret in [
        ADMIN,
        READER,
        CLUSTER_TOKEN,
        "users",
        "127.0.0.1",
        "metrics-dp",
    ] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
    assert!(e.names().iter().all(|n| n.starts_with("turnpike_")));

    // The data plane goes away: the fleet gauge follows.
    drop(dp);
    let mut tries = 0;
    loop {
        let (e, _) = scrape(&a).await;
        if fleet(&e, "disconnected") == 1.0 {
            assert_eq!(fleet(&e, "synced"), 0.0);
            break;
        }
        tries += 1;
        assert!(tries < 200, "disconnect not shown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_data_plane_behind_or_refusing_shows_in_the_fleet_gauge(pool: PgPool) {
    let a = Api::new(pool).await;
    let store = &a.state.store;
    let labels = BTreeMap::new();
    let hello = |node| turnpike_control_plane::store::HelloInfo {
        node_id: node,
        hostname: "h",
        software_version: "test",
        labels: &labels,
        cached_version: 1,
        cached_hash: "",
    };
    let (behind, refusing) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    store.dp_hello(behind, &hello("behind")).await.unwrap();
    store.dp_hello(refusing, &hello("refusing")).await.unwrap();
    let up = json!({"name": "u", "targets": [{"address": "127.0.0.1:9"}]});
    let v = a
        .call(Method::POST, "/api/v1/upstreams", Some(up))
        .await
        .version
        .unwrap();
    store.dp_nack(refusing, v, "no").await.unwrap();

    let (e, _) = scrape(&a).await;
    let fleet = |s| e.value("turnpike_data_planes", &[("status", s)]);
    assert_eq!(
        [
            fleet("synced"),
            fleet("behind"),
            fleet("error"),
            fleet("disconnected")
        ],
        [0.0, 1.0, 1.0, 0.0]
    );
    // The same as the fleet view says.
    let view = a.call(Method::GET, "/api/v1/data-planes", None).await;
    let mut statuses: Vec<&str> = view.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["behind", "error"]);
}

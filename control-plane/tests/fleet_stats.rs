//! Traffic reports in the fleet view: a scripted data plane over real gRPC
//! sends `Stats` on its config stream; `GET /api/v1/data-planes` shows the
//! latest as `stats` (null before the first), a report never disturbs the
//! config exchange, and the OpenAPI document describes the field
//! (`#[sqlx::test]`).

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::Api;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use turnpike_control_plane::cluster::{self, ClusterService};
use turnpike_control_plane::secret;
use turnpike_proto as proto;
use turnpike_proto::config_discovery_client::ConfigDiscoveryClient;
use turnpike_proto::control_plane_message::Message as Down;
use turnpike_proto::data_plane_message::Message as Up;

const CLUSTER_TOKEN: &str = "test-cluster-token-0123456789";
const NODE: &str = "stats-dp";

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
            node_id: NODE.to_owned(),
            ..Default::default()
        };
        tx.send(proto::DataPlaneMessage {
            message: Some(Up::Hello(hello)),
        })
        .await
        .unwrap();
        let inbound = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        FakeDp { tx, inbound }
    }

    async fn send(&self, m: Up) {
        self.tx
            .send(proto::DataPlaneMessage { message: Some(m) })
            .await
            .unwrap();
    }

    /// The next config message (a snapshot: no delta feature declared).
    async fn next_snapshot(&mut self) -> proto::Snapshot {
        let msg = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("a config message within 10 s")
            .unwrap()
            .unwrap();
        match msg.message {
            Some(Down::Snapshot(s)) => s,
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }

    async fn ack(&self, s: &proto::Snapshot) {
        self.send(Up::Ack(proto::Ack {
            version: s.version,
            hash: s.hash.clone(),
        }))
        .await;
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

async fn item(a: &Api) -> Value {
    let fleet = a.call(Method::GET, "/api/v1/data-planes", None).await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.body);
    let items = fleet.body["items"].as_array().unwrap();
    items
        .iter()
        .find(|i| i["node_id"] == NODE)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Polls the fleet view until `check` holds for the data plane's row.
async fn wait_item(a: &Api, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let i = item(a).await;
        if check(&i) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fleet view never showed {what}: {}", item(a).await);
}

fn stats(requests: u64, errors: u64, window: (u64, u64), p99_ms: f64) -> Up {
    Up::Stats(proto::Stats {
        requests,
        errors,
        interval_requests: window.0,
        interval_errors: window.1,
        p99_ms,
        interval_ms: 10_000,
    })
}

#[sqlx::test(migrations = false)]
async fn reported_stats_show_in_the_fleet_view(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    let (url, _stop) = serve_cluster(&a).await;
    let mut dp = FakeDp::connect(&url).await;
    let first = dp.next_snapshot().await;
    dp.ack(&first).await;
    let row = wait_item(&a, "synced", |i| i["status"] == "synced").await;
    assert!(row["stats"].is_null(), "no report yet: {row}");

    // A report: totals, the window's error rate and p99.
    dp.send(stats(1500, 30, (200, 5), 250.0)).await;
    let row = wait_item(&a, "the first report", |i| i["stats"].is_object()).await;
    let s = &row["stats"];
    assert_eq!(s["requests"], 1500, "{row}");
    assert_eq!(s["errors"], 30);
    assert_eq!(s["interval_requests"], 200);
    assert_eq!(s["error_rate"], json!(0.025));
    assert_eq!(s["p99_ms"], json!(250.0));
    assert_eq!(s["interval_ms"], 10_000);
    assert!(s["reported_at"].is_string(), "{row}");
    assert_eq!(row["status"], "synced", "a report is no config answer");

    // A report while a version is in flight does not count as its answer:
    // the ACK that follows does, and the next report replaces the last.
    let v = a
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "users", "targets": [{"address": "127.0.0.1:9001"}]})),
        )
        .await
        .version
        .unwrap();
    let next = dp.next_snapshot().await;
    assert_eq!(next.version, v);
    dp.send(stats(1600, 30, (0, 0), 0.0)).await;
    dp.ack(&next).await;
    let row = wait_item(&a, "the second report and the ACK", |i| {
        i["stats"]["requests"] == 1600 && i["config_version"] == v
    })
    .await;
    assert_eq!(row["status"], "synced");
    // An interval without answers has neither rate nor p99.
    assert!(row["stats"]["error_rate"].is_null(), "{row}");
    assert!(row["stats"]["p99_ms"].is_null(), "{row}");
    assert_eq!(row["stats"]["errors"], 30);

    // One row per data plane, the report in one column.
    let stored: (Value,) = sqlx::query_as("SELECT stats FROM data_planes WHERE node_id = $1")
        .bind(NODE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.0["requests"], 1600);

    // The report stays after the data plane goes, with its time.
    drop(dp);
    let row = wait_item(&a, "disconnected", |i| i["status"] == "disconnected").await;
    assert_eq!(row["stats"]["requests"], 1600);
}

#[sqlx::test(migrations = false)]
async fn stored_reports_of_other_versions_still_read(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    let (url, _stop) = serve_cluster(&a).await;
    let mut dp = FakeDp::connect(&url).await;
    let first = dp.next_snapshot().await;
    dp.ack(&first).await;
    wait_item(&a, "synced", |i| i["status"] == "synced").await;
    // Written by a newer control plane: an unknown field, a missing one.
    sqlx::query("UPDATE data_planes SET stats = $2, stats_at = now() WHERE node_id = $1")
        .bind(NODE)
        .bind(json!({"requests": 7, "errors": 1, "open_connections": 3}))
        .execute(&pool)
        .await
        .unwrap();
    let row = item(&a).await;
    assert_eq!(row["stats"]["requests"], 7, "{row}");
    assert_eq!(row["stats"]["interval_requests"], 0);
    assert!(row["stats"]["error_rate"].is_null());
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_describes_the_stats(pool: PgPool) {
    let a = Api::new(pool).await;
    let doc = a
        .call_as(None, Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let schemas = &doc.body["components"]["schemas"];
    let view = &schemas["DataPlaneView"]["properties"]["stats"];
    assert!(
        view.to_string()
            .contains("#/components/schemas/DataPlaneStats"),
        "{view}"
    );
    assert!(view.to_string().contains("null"), "nullable: {view}");
    let stats = &schemas["DataPlaneStats"];
    let props = stats["properties"].as_object().unwrap();
    for field in [
        "requests",
        "errors",
        "interval_requests",
        "error_rate",
        "p99_ms",
        "interval_ms",
        "reported_at",
    ] {
        assert!(props.contains_key(field), "{field} missing: {stats}");
    }
    let required: Vec<&str> = stats["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains(&"requests") && required.contains(&"reported_at"));
}

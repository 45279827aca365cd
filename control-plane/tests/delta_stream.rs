//! The config stream's choice between deltas and full snapshots, seen by a
//! scripted data plane over real gRPC (`#[sqlx::test]`: one database per
//! test): deltas follow ACKs and coalesce to the newest version, a refused
//! delta is followed by the full snapshot, and a data plane whose hash this
//! cluster does not know, that did not declare deltas, or for which the
//! delta would not be smaller, gets the full snapshot.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use support::Api;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use turnpike_control_plane::cluster::{self, ClusterService};
use turnpike_control_plane::secret;
use turnpike_model::{Delta, Snapshot};
use turnpike_proto as proto;
use turnpike_proto::config_discovery_client::ConfigDiscoveryClient;
use turnpike_proto::control_plane_message::Message as Down;
use turnpike_proto::data_plane_message::Message as Up;

const TOKEN: &str = "test-cluster-token-0123456789";

/// The cluster listener of `api`'s state, until the returned sender drops.
async fn serve(api: &Api) -> (String, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = ClusterService::new(
        api.state.clone(),
        secret::digest(TOKEN),
        turnpike_proto::ClusterSecrets::default(),
    );
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(cluster::serve(listener, service, None, shutdown));
    (url, stop)
}

/// A data plane played by the test: it says Hello, then reads, ACKs and
/// NACKs by hand.
struct FakeDp {
    tx: mpsc::Sender<proto::DataPlaneMessage>,
    inbound: tonic::Streaming<proto::ControlPlaneMessage>,
}

fn hello(cached: (u64, &str), deltas: bool) -> proto::Hello {
    proto::Hello {
        node_id: format!("fake-{}", uuid::Uuid::new_v4().simple()),
        cached_version: cached.0,
        cached_hash: cached.1.to_owned(),
        features: if deltas {
            vec![proto::FEATURE_DELTA.to_owned()]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

impl FakeDp {
    async fn connect(url: &str, hello: proto::Hello) -> FakeDp {
        let auth: MetadataValue<_> = format!("Bearer {TOKEN}").parse().unwrap();
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
        let dp = |m| proto::DataPlaneMessage { message: Some(m) };
        tx.send(dp(Up::Hello(hello))).await.unwrap();
        let inbound = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        FakeDp { tx, inbound }
    }

    async fn next(&mut self) -> Down {
        tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("a config message within 10 s")
            .unwrap()
            .unwrap()
            .message
            .unwrap()
    }

    async fn snapshot(&mut self) -> proto::Snapshot {
        match self.next().await {
            Down::Snapshot(s) => s,
            Down::Delta(d) => panic!(
                "expected a snapshot, got a delta {}→{}",
                d.from_version, d.to_version
            ),
        }
    }

    async fn delta(&mut self) -> proto::Delta {
        match self.next().await {
            Down::Delta(d) => d,
            Down::Snapshot(s) => panic!("expected a delta, got the snapshot of {}", s.version),
        }
    }

    async fn answer(&self, m: Up) {
        self.tx
            .send(proto::DataPlaneMessage { message: Some(m) })
            .await
            .unwrap();
    }

    async fn ack(&self, version: u64, hash: &str) {
        let hash = hash.to_owned();
        self.answer(Up::Ack(proto::Ack { version, hash })).await;
    }
}

async fn write(a: &Api, method: Method, path: &str, body: serde_json::Value) -> u64 {
    let r = a.call(method, path, Some(body)).await;
    assert!(r.status.is_success(), "{}: {}", r.status, r.body);
    r.version.unwrap()
}

/// An upstream and a route; returns the version.
async fn seed(a: &Api) -> u64 {
    let up = json!({"name": "u", "targets": [{"address": "127.0.0.1:9"}]});
    write(a, Method::POST, "/api/v1/upstreams", up).await;
    let route = json!({"name": "r", "paths": ["/one"], "upstream": "u"});
    write(a, Method::POST, "/api/v1/routes", route).await
}

async fn move_route(a: &Api, path: &str) -> u64 {
    let body = json!({"paths": [path]});
    write(a, Method::PATCH, "/api/v1/routes/r", body).await
}

#[sqlx::test]
async fn deltas_follow_acks_coalesce_and_a_refused_one_brings_the_snapshot(pool: PgPool) {
    let a = Api::new(pool).await;
    let v1 = seed(&a).await;
    let (url, _stop) = serve(&a).await;
    let mut dp = FakeDp::connect(&url, hello((0, ""), true)).await;

    // Nothing held: the full snapshot.
    let first = dp.snapshot().await;
    assert_eq!(first.version, v1);
    let mut running = Snapshot::decode(first).unwrap();
    dp.ack(v1, &running.hash()).await;

    // One route changes: a delta with that route only, from what was acked.
    let v2 = move_route(&a, "/two").await;
    let d = dp.delta().await;
    assert_eq!((d.from_version, d.to_version), (v1, v2));
    let upserts = d.upserts.as_ref().unwrap();
    assert_eq!((upserts.routes.len(), upserts.upstreams.len()), (1, 0));
    running = Delta::try_from(d).unwrap().apply(&running).unwrap();
    assert_eq!(running.routes[0].spec.paths, ["/two"]);

    // Versions committed while one is in flight coalesce: once v2 is
    // acked, the newest comes as one delta from v2.
    let _v3 = move_route(&a, "/three").await;
    let v4 = move_route(&a, "/four").await;
    dp.ack(v2, &running.hash()).await;
    let d = dp.delta().await;
    assert_eq!((d.from_version, d.to_version), (v2, v4));
    running = Delta::try_from(d).unwrap().apply(&running).unwrap();
    dp.ack(v4, &running.hash()).await;

    // A refused delta: the same version follows as a full snapshot.
    let v5 = move_route(&a, "/five").await;
    assert_eq!(dp.delta().await.to_version, v5);
    let error = "hash mismatch".to_owned();
    dp.answer(Up::Nack(proto::Nack { version: v5, error }))
        .await;
    let full = dp.snapshot().await;
    assert_eq!(full.version, v5);
    let full = Snapshot::decode(full).unwrap();
    assert_eq!(full.routes[0].spec.paths, ["/five"]);
    dp.ack(v5, &full.hash()).await;

    // Deltas resume after that, and the fleet shows the acked version.
    let v6 = move_route(&a, "/six").await;
    let d = dp.delta().await;
    assert_eq!((d.from_version, d.to_version), (v5, v6));
    let fleet = a.call(Method::GET, "/api/v1/data-planes", None).await;
    assert_eq!(fleet.status, StatusCode::OK);
    assert_eq!(fleet.body["items"][0]["config_version"], v5);
}

#[sqlx::test]
async fn only_a_known_hash_a_declared_feature_and_a_smaller_delta_get_a_delta(pool: PgPool) {
    let a = Api::new(pool).await;
    let v1 = seed(&a).await;
    let h1 = a.state.store.get_version(v1).await.unwrap().entry.hash;
    let (url, _stop) = serve(&a).await;
    let v2 = move_route(&a, "/two").await;

    // Held since before this process knew any data plane: read from the
    // history.
    let mut known = FakeDp::connect(&url, hello((v1, &h1), true)).await;
    let d = known.delta().await;
    assert_eq!((d.from_version, d.to_version), (v1, v2));

    // The same version with content this cluster never had under it.
    let mut stranger = FakeDp::connect(&url, hello((v1, &"0".repeat(64)), true)).await;
    assert_eq!(stranger.snapshot().await.version, v2);

    // A data plane that did not say it applies deltas.
    let mut old = FakeDp::connect(&url, hello((v1, &h1), false)).await;
    assert_eq!(old.snapshot().await.version, v2);

    // On the current version: nothing to send until the next one. Then
    // the route goes (a removal, smaller than the config)...
    let stored = a.state.store.get_version(v2).await.unwrap();
    let mut dp = FakeDp::connect(&url, hello((v2, &stored.entry.hash), true)).await;
    let v3 = a
        .call(Method::DELETE, "/api/v1/routes/r", None)
        .await
        .version
        .unwrap();
    let d = dp.delta().await;
    assert_eq!(d.removals.as_ref().unwrap().routes.len(), 1);
    let running = Delta::try_from(d).unwrap().apply(&stored.snapshot).unwrap();
    dp.ack(v3, &running.hash()).await;

    // ...then the only entity left changes: the delta would be the whole
    // config plus its own fields, so the snapshot goes.
    let body = json!({"targets": [{"address": "127.0.0.1:10"}]});
    let v4 = write(&a, Method::PATCH, "/api/v1/upstreams/u", body).await;
    assert_eq!(dp.snapshot().await.version, v4);
}

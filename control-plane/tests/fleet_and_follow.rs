//! Several control planes on one database, and the fleet records they share
//! (`#[sqlx::test]`: one database per test): a version committed through
//! one control plane reaches the publisher of another (by NOTIFY, by the
//! catch-up read at start and after a lost listener), the fleet view shows
//! ACKs and NACKs as they are recorded, and old fleet rows expire.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use support::Api;
use turnpike_control_plane::follow::Follower;
use turnpike_control_plane::snapshot::Publisher;
use turnpike_control_plane::store::{HelloInfo, Store};
use uuid::Uuid;

/// The safety-net read is pushed out of the tests' reach, so what they
/// see comes from notifications and catch-up reads alone.
const NO_SAFETY_NET: Duration = Duration::from_secs(3600);

/// A second control plane on the same database: its own store and
/// publisher (starting at the version it read), and its follower task.
struct Peer {
    publisher: Publisher,
    task: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Peer {
    async fn start(pool: PgPool) -> Peer {
        let store = Store::from_pool(pool).await.unwrap();
        let publisher = Publisher::new(store.ensure_initial_version().await.unwrap());
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let follower = Follower::new(store, publisher.clone(), NO_SAFETY_NET);
        let task = tokio::spawn(follower.run(shutdown));
        Peer {
            publisher,
            task,
            _stop: stop,
        }
    }

    /// Waits (no fixed sleep) until the publisher holds `version`.
    async fn reaches(&self, version: u64) {
        let mut rx = self.publisher.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|p| p.version >= version),
        )
        .await
        .unwrap_or_else(|_| panic!("peer did not reach version {version}"))
        .unwrap();
        assert_eq!(self.publisher.current().version, version);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn create_upstream(a: &Api, name: &str) -> u64 {
    let r = a
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": name, "targets": [{"address": "127.0.0.1:9"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.version.unwrap()
}

/// The listener's backend, once it has subscribed.
async fn listener_pid(pool: &PgPool, not: Option<i32>) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pid: Option<(i32,)> = sqlx::query_as(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database()
               AND application_name = 'turnpike-control-plane-listener'
               AND query ILIKE 'LISTEN%' AND pid <> $1",
        )
        .bind(not.unwrap_or(0))
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some((pid,)) = pid {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no listener connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn a_write_through_one_control_plane_reaches_the_other(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    let b = Peer::start(pool.clone()).await;
    listener_pid(&pool, None).await;
    let v = create_upstream(&a, "users").await;
    b.reaches(v).await;
    assert_eq!(
        b.publisher.current().hash,
        a.state.publisher.current().hash,
        "the same version is the same content"
    );
}

#[sqlx::test]
async fn a_control_plane_catches_up_on_versions_committed_before_it_listened(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    // B read version 1 at start; A commits before B's follower listens.
    let store = Store::from_pool(pool.clone()).await.unwrap();
    let publisher = Publisher::new(store.ensure_initial_version().await.unwrap());
    create_upstream(&a, "one").await;
    let v = create_upstream(&a, "two").await;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Follower::new(store, publisher.clone(), NO_SAFETY_NET).run(shutdown));
    let mut rx = publisher.subscribe();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|p| p.version >= v))
        .await
        .expect("caught up")
        .unwrap();
    task.abort();
}

#[sqlx::test]
async fn a_lost_listener_reconnects_and_catches_up(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    let b = Peer::start(pool.clone()).await;
    let first = listener_pid(&pool, None).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    // Committed while the listener is (most likely) away: only the
    // catch-up read after the reconnect can deliver it.
    let v = create_upstream(&a, "while-away").await;
    b.reaches(v).await;
    // The new connection listens again: the next write arrives by NOTIFY.
    listener_pid(&pool, Some(first)).await;
    let v = create_upstream(&a, "after").await;
    b.reaches(v).await;
}

#[sqlx::test]
async fn the_follower_never_publishes_an_older_version(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    let v = create_upstream(&a, "users").await;
    let store = Store::from_pool(pool.clone()).await.unwrap();
    // This process already holds a newer version than the database's newest
    // (as if it had just published its own write).
    let mut newer = store
        .published_after(0)
        .await
        .unwrap()
        .unwrap()
        .wire
        .clone();
    newer.version = v + 10;
    let publisher = Publisher::new(turnpike_control_plane::snapshot::Published::new(newer));
    let follower = Follower::new(store, publisher.clone(), NO_SAFETY_NET);
    follower.read_newest().await.unwrap();
    assert_eq!(publisher.current().version, v + 10);
}

fn hello<'a>(node: &'a str, labels: &'a BTreeMap<String, String>) -> HelloInfo<'a> {
    HelloInfo {
        node_id: node,
        hostname: "host-a",
        software_version: "0.1.0",
        labels,
        cached_version: 0,
        cached_hash: "",
    }
}

#[sqlx::test]
async fn the_fleet_view_shows_a_nack_at_once_and_clears_it_on_ack(pool: PgPool) {
    let a = Api::new(pool.clone()).await;
    let v = create_upstream(&a, "users").await;
    let labels = BTreeMap::from([("zone".to_owned(), "eu-1".to_owned())]);
    let session = Uuid::now_v7();
    let store = &a.state.store;
    store
        .dp_hello(session, &hello("dp-1", &labels))
        .await
        .unwrap();
    store
        .dp_nack(session, v, "plugins are not supported")
        .await
        .unwrap();

    let fleet = a.call(Method::GET, "/api/v1/data-planes", None).await;
    assert_eq!(fleet.status, StatusCode::OK);
    let item = &fleet.body["items"][0];
    assert_eq!(item["node_id"], "dp-1");
    assert_eq!(item["hostname"], "host-a");
    assert_eq!(item["software_version"], "0.1.0");
    assert_eq!(item["labels"], json!({"zone": "eu-1"}));
    assert_eq!(item["connected"], true);
    assert_eq!(item["status"], "error");
    assert_eq!(item["error"], "plugins are not supported");
    assert_eq!(item["error_version"], v);
    assert!(item["error_at"].is_string(), "{item}");
    assert!(item["connected_since"].is_string(), "{item}");
    assert!(item["last_seen"].is_string(), "{item}");
    assert_eq!(item["config_version"], 0);

    store.dp_ack(session, v, "hash").await.unwrap();
    let item = a.call(Method::GET, "/api/v1/data-planes", None).await.body["items"][0].clone();
    assert_eq!(item["status"], "synced");
    assert_eq!(item["config_version"], v);
    assert!(item["error"].is_null() && item["error_version"].is_null());

    store.dp_disconnect(session).await.unwrap();
    let item = a.call(Method::GET, "/api/v1/data-planes", None).await.body["items"][0].clone();
    assert_eq!(item["status"], "disconnected");
    assert_eq!(item["connected"], false);
}

/// Moves a row's `last_seen` into the past.
async fn seen_ago(pool: &PgPool, node: &str, secs: f64) {
    sqlx::query(
        "UPDATE data_planes SET last_seen = now() - make_interval(secs => $2) WHERE node_id = $1",
    )
    .bind(node)
    .bind(secs)
    .execute(pool)
    .await
    .unwrap();
}

async fn nodes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT node_id FROM data_planes ORDER BY node_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn fleet_rows_of_long_gone_data_planes_expire(pool: PgPool) {
    let store = Store::from_pool(pool.clone()).await.unwrap();
    let labels = BTreeMap::new();
    let day = 24.0 * 3600.0;
    let mut sessions = BTreeMap::new();
    for node in ["gone", "recently-gone", "orphaned", "live", "live-quiet"] {
        let s = Uuid::now_v7();
        store.dp_hello(s, &hello(node, &labels)).await.unwrap();
        sessions.insert(node, s);
    }
    store.dp_disconnect(sessions["gone"]).await.unwrap();
    store
        .dp_disconnect(sessions["recently-gone"])
        .await
        .unwrap();
    seen_ago(&pool, "gone", 2.0 * day).await;
    seen_ago(&pool, "recently-gone", 3600.0).await;
    // Still marked connected, but its control plane died two days ago and
    // nobody refreshed it.
    seen_ago(&pool, "orphaned", 2.0 * day).await;
    // Connected, heartbeat merely due.
    seen_ago(&pool, "live-quiet", 5.0).await;

    let expiry = Duration::from_secs(24 * 3600);
    assert_eq!(store.expire_data_planes(expiry).await.unwrap(), 2);
    assert_eq!(nodes(&pool).await, ["live", "live-quiet", "recently-gone"]);
    // Idempotent: a second control plane running it finds nothing to do.
    assert_eq!(store.expire_data_planes(expiry).await.unwrap(), 0);

    // A tiny expiry takes what is disconnected, never a live stream whose
    // heartbeat is only due.
    assert_eq!(
        store
            .expire_data_planes(Duration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(nodes(&pool).await, ["live", "live-quiet"]);

    // A data plane that comes back after expiry gets a fresh row.
    store
        .dp_hello(Uuid::now_v7(), &hello("gone", &labels))
        .await
        .unwrap();
    assert_eq!(nodes(&pool).await, ["gone", "live", "live-quiet"]);
}

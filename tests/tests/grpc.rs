//! gRPC through the proxy, end to end: a `grpc.health.v1` server (from
//! tonic-health) as an HTTP/2 upstream, and a tonic client speaking h2c to
//! the data plane. Unary calls, a server stream that carries a change made
//! while it is open, and an error status (a trailers-only response) all
//! arrive as the server sent them.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Wire;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;
use turnpike_tests::{ControlPlane, DataPlane, Db, assert_status, fresh_database_url};

/// Longest wait for any answer or message: a hang fails instead of blocking.
const WAIT: Duration = Duration::from_secs(20);
const SERVICE: &str = "turnpike.test.Orders";

/// A health server on a port of its own, with `SERVICE` serving; returns
/// its address and the reporter that changes its statuses.
async fn health_server() -> (String, HealthReporter, tokio::task::JoinHandle<()>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (addr, reporter, task)
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_streaming_and_errors_through_the_proxy() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let (addr, reporter, server) = health_server().await;

    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "health", "targets": [{"address": addr}], "protocol": "http2"})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(
                json!({"name": "grpc", "paths": ["/grpc.health.v1.Health"], "upstream": "health"}),
            ),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    dp.wait_for_version(route.version()).await;

    // h2c with prior knowledge to the plain proxy listener.
    let channel = Channel::from_shared(dp.proxy.clone())
        .unwrap()
        .connect_timeout(WAIT)
        .connect()
        .await
        .expect("the proxy accepts h2c");
    let mut client = HealthClient::new(channel);

    // Unary.
    let checked = tokio::time::timeout(WAIT, client.check(request(SERVICE)))
        .await
        .expect("an answer in time")
        .expect("Check succeeds through the proxy");
    assert_eq!(checked.into_inner().status(), Wire::Serving);

    // An error status: a trailers-only response, its code and message
    // intact.
    let missing = tokio::time::timeout(WAIT, client.check(request("no.such.Service")))
        .await
        .expect("an answer in time")
        .expect_err("an unknown service is an error");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(missing.message(), "service not registered");

    // Server streaming: the current status first, then a change made while
    // the stream is open.
    let mut watch = tokio::time::timeout(WAIT, client.watch(request(SERVICE)))
        .await
        .expect("an answer in time")
        .expect("Watch starts through the proxy")
        .into_inner();
    let first = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("the initial status in time")
        .expect("no stream error")
        .expect("a message, not the end");
    assert_eq!(first.status(), Wire::Serving);
    reporter
        .set_service_status(SERVICE, ServingStatus::NotServing)
        .await;
    let changed = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("the change in time")
        .expect("no stream error")
        .expect("a message, not the end");
    assert_eq!(changed.status(), Wire::NotServing);

    server.abort();
}

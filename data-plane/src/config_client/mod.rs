//! The config stream client: connects to a control plane, says Hello with
//! the version it holds (and that it understands deltas), applies each
//! snapshot or delta (`delta`) (validate → compile → one `ArcSwap::store`)
//! and ACKs it, or NACKs and keeps the previous one. Every few seconds it
//! also sends its traffic counters (`report`) for the fleet view.
//! Reconnects with capped, jittered exponential backoff, cycling through the
//! control-plane addresses, while the proxy keeps serving what it has.

mod delta;
mod report;
mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;
use turnpike_model::Snapshot;
use turnpike_proto as proto;
use turnpike_proto::config_discovery_client::ConfigDiscoveryClient;

use crate::compile::Compiled;
use crate::{Error, Shared};

pub use delta::{Applied, ConfigStats};
pub use report::{STATS_INTERVAL, STATS_INTERVAL_ENV};
pub use tls::ClusterTls;
pub use turnpike_model::backoff::Backoff;

/// Largest snapshot accepted; matches the control plane's limit.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// HTTP/2 keepalive interval and timeout, as on the control plane.
const KEEPALIVE: Duration = Duration::from_secs(5);

pub struct ClientSettings {
    pub control_planes: Vec<String>,
    pub cluster_token: String,
    pub tls: Option<ClusterTls>,
}

pub async fn run(
    shared: Arc<Shared>,
    settings: ClientSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut attempt = 0usize;
    // Outlives sessions: the totals count from the start of the process.
    let mut reporter = (report::Reporter::new(), report::interval());
    loop {
        let url = &settings.control_planes[attempt % settings.control_planes.len()];
        attempt += 1;
        let outcome = tokio::select! {
            r = session(&shared, url, &settings, &mut reporter) => r,
            _ = crate::stopped(&mut shutdown) => return,
        };
        shared.connected.store(false, Ordering::Relaxed);
        match outcome {
            Ok(received) => {
                tracing::warn!(control_plane = %url, "config stream closed by the control plane");
                if received {
                    backoff.reset();
                }
            }
            Err((received, e)) => {
                tracing::warn!(control_plane = %url, error = %e, "config stream failed; serving the last config");
                if received {
                    backoff.reset();
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
    }
}

/// One connection. Returns whether any message arrived (a healthy session
/// resets the backoff). Sends the traffic counters every `interval` once
/// the Hello is out.
async fn session(
    shared: &Shared,
    url: &str,
    settings: &ClientSettings,
    (reporter, interval): &mut (report::Reporter, Duration),
) -> Result<bool, (bool, Error)> {
    let token = &settings.cluster_token;
    let mut received = false;
    let result = async {
        let mut endpoint = Endpoint::from_shared(url.to_owned())?;
        if let Some(tls) = &settings.tls {
            endpoint = endpoint.tls_config(tls.client_config())?;
        }
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            // A ping every 5 s, 5 s to answer: a stalled or half-open
            // stream is found within 10 s, well inside the 20 s promised.
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        let auth: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
            Error::ControlPlane("the cluster token is not a valid header value".into())
        })?;
        let mut client =
            ConfigDiscoveryClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", auth.clone());
                Ok(req)
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);

        let (tx, rx) = mpsc::channel(8);
        let current = shared.config.load();
        let hello = proto::Hello {
            node_id: shared.node_id.clone(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            labels: shared.labels.clone(),
            cached_version: current.version,
            cached_hash: current.hash.clone(),
            features: vec![proto::FEATURE_DELTA.to_owned()],
        };
        send(&tx, proto::data_plane_message::Message::Hello(hello)).await?;
        let mut inbound = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        shared.connected.store(true, Ordering::Relaxed);
        shared.cache.control_plane_connected();
        tracing::info!(control_plane = %url, "connected to control plane");
        let every = *interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbound.message() => {
                    let Some(msg) = msg? else { break };
                    received = true;
                    let reply = match msg.message {
                        Some(proto::control_plane_message::Message::Snapshot(s)) => {
                            apply(shared, s).await
                        }
                        Some(proto::control_plane_message::Message::Delta(d)) => {
                            delta::apply(shared, d).await
                        }
                        None => continue,
                    };
                    send(&tx, reply).await?;
                }
                _ = ticker.tick() => {
                    let stats = reporter.report(&shared.config.load());
                    tracing::debug!(requests = stats.requests, errors = stats.errors, p99_ms = stats.p99_ms, "sending stats");
                    send(&tx, proto::data_plane_message::Message::Stats(stats)).await?;
                }
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    match result {
        Ok(()) => Ok(received),
        Err(e) => Err((received, e)),
    }
}

async fn send(
    tx: &mpsc::Sender<proto::DataPlaneMessage>,
    m: proto::data_plane_message::Message,
) -> Result<(), Error> {
    tx.send(proto::DataPlaneMessage { message: Some(m) })
        .await
        .map_err(|_| Error::ControlPlane("stream closed".into()))
}

/// Validates, compiles and swaps in one snapshot; answers ACK or NACK.
async fn apply(shared: &Shared, wire: proto::Snapshot) -> proto::data_plane_message::Message {
    let started = Instant::now();
    let version = wire.version;
    let held = shared.config.load().version;
    if version < held {
        return nack(
            version,
            format!("version {version} is older than the applied version {held}"),
        );
    }
    let applied = Applied::Snapshot {
        bytes: prost::Message::encoded_len(&wire),
    };
    // Compiling a large config is CPU work; keep it off the proxy's threads.
    let registries = shared.registries.clone();
    // A control plane that sends no secrets (older) leaves ours as they are.
    let mut wire = wire;
    let secrets = match wire.secrets.take() {
        Some(s) => Arc::new(s),
        None => shared.config.load().secrets.clone(),
    };
    let compiled = tokio::task::spawn_blocking(move || {
        let snapshot = Snapshot::try_from(wire)?;
        Compiled::build(&snapshot, snapshot.hash(), secrets, &registries).map(|c| (c, snapshot))
    })
    .await;
    finish(shared, version, (applied, started), compiled).await
}

/// Swaps in a compiled version (from a snapshot or a delta) and ACKs it, or
/// NACKs what failed. `started` is when its message was taken up, so the
/// recorded apply time covers decode to swap.
async fn finish(
    shared: &Shared,
    version: u64,
    (applied, started): (Applied, Instant),
    compiled: Result<Result<(Compiled, Snapshot), Error>, tokio::task::JoinError>,
) -> proto::data_plane_message::Message {
    match compiled {
        Ok(Ok((compiled, snapshot))) => {
            let hash = compiled.hash.clone();
            let secrets = compiled.secrets.clone();
            shared.config.store(Arc::new(compiled));
            let took = started.elapsed();
            shared.cache.applied_from_control_plane();
            shared.stats.record(applied, took);
            tracing::info!(
                version,
                %hash,
                kind = applied.kind(),
                bytes = applied.bytes(),
                apply_ms = took.as_secs_f64() * 1000.0,
                "config applied"
            );
            // Swap, cache, then ACK (PROTOCOL.md step 3).
            shared.cache.save(snapshot, secrets).await;
            proto::data_plane_message::Message::Ack(proto::Ack { version, hash })
        }
        Ok(Err(e)) => nack(version, e.to_string()),
        Err(e) => nack(version, format!("compile task failed: {e}")),
    }
}

fn nack(version: u64, error: String) -> proto::data_plane_message::Message {
    tracing::error!(version, %error, "config refused; keeping the previous one");
    proto::data_plane_message::Message::Nack(proto::Nack { version, error })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use arc_swap::ArcSwap;
    use turnpike_model::{Route, RouteSpec, Upstream, UpstreamSpec};
    use uuid::Uuid;

    use super::*;

    pub(super) fn shared() -> Shared {
        Shared {
            config: ArcSwap::from_pointee(Compiled::empty()),
            connected: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            node_id: "test".into(),
            labels: BTreeMap::new(),
            registries: Arc::default(),
            body_limits: Default::default(),
            access_log: None,
            metrics: true,
            connections: Default::default(),
            cache: crate::cache::Cache::default(),
            stats: ConfigStats::default(),
        }
    }

    pub(super) fn snapshot(version: u64) -> proto::Snapshot {
        let upstream = Upstream {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<UpstreamSpec>(serde_json::json!({
                "name": "u", "targets": [{"address": "127.0.0.1:1"}]
            }))
            .unwrap(),
        };
        let route = Route {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<RouteSpec>(serde_json::json!({
                "name": "r", "paths": ["/"], "upstream": upstream.id.to_string()
            }))
            .unwrap(),
        };
        Snapshot::new(version, vec![upstream], vec![route]).to_proto()
    }

    pub(super) fn is_ack(m: &proto::data_plane_message::Message, v: u64) -> bool {
        matches!(m, proto::data_plane_message::Message::Ack(a) if a.version == v)
    }

    pub(super) fn nack_error(m: proto::data_plane_message::Message) -> String {
        match m {
            proto::data_plane_message::Message::Nack(n) => n.error,
            other => panic!("expected a NACK, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn applies_valid_snapshots_and_keeps_the_last_good_one() {
        let shared = shared();
        let good = snapshot(5);
        let hash = good.hash.clone();
        assert!(is_ack(&apply(&shared, good).await, 5));
        assert_eq!(shared.config.load().version, 5);
        assert_eq!(shared.config.load().routes.len(), 1);

        // Tampered content: the hash no longer matches.
        let mut tampered = snapshot(6);
        tampered.config.as_mut().unwrap().routes[0].priority = 9;
        assert!(nack_error(apply(&shared, tampered).await).contains("hash mismatch"));

        // A dangling reference that still hashes correctly.
        let mut dangling = snapshot(7);
        let config = dangling.config.as_mut().unwrap();
        config.routes[0].upstream = Uuid::now_v7().to_string();
        dangling.hash = turnpike_model::snapshot::hash_config(config);
        assert!(nack_error(apply(&shared, dangling).await).contains("unknown upstream"));

        // Older than what runs.
        assert!(nack_error(apply(&shared, snapshot(4)).await).contains("older"));

        // A policy this data plane cannot enforce is refused, not ignored:
        // key-auth without the pepper to digest keys with.
        let mut with_plugin = snapshot(8);
        let config = with_plugin.config.as_mut().unwrap();
        // A valid plugin, so the refusal (not a parse error) is what answers.
        config.plugins.push(proto::Plugin {
            id: Uuid::now_v7().to_string(),
            name: "key-auth".into(),
            config_json: "{}".into(),
            enabled: true,
            ..Default::default()
        });
        with_plugin.hash = turnpike_model::snapshot::hash_config(config);
        let error = nack_error(apply(&shared, with_plugin).await);
        assert!(error.contains("no key-auth pepper"), "{error}");

        // A client certificate whose key does not load: the model cannot
        // tell (no crypto there), the compile step can.
        let mut mtls = snapshot(9);
        let config = mtls.config.as_mut().unwrap();
        let cert = Uuid::now_v7().to_string();
        config.certificates.push(proto::Certificate {
            id: cert.clone(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ..Default::default()
        });
        config.upstreams[0].tls = Some(proto::UpstreamTls {
            verify: true,
            client_certificate: Some(cert),
            ..Default::default()
        });
        mtls.hash = turnpike_model::snapshot::hash_config(config);
        let error = nack_error(apply(&shared, mtls).await);
        assert!(error.contains("tls.client_certificate"), "{error}");

        let still = shared.config.load();
        assert_eq!(
            (still.version, still.hash.as_str()),
            (5, hash.as_str()),
            "the last good config keeps serving"
        );
    }
}

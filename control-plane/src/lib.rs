//! Turnpike's control plane: owns the configuration in Postgres, serves the
//! admin API, records every change as a new global config version, and
//! streams versioned snapshots to the data planes over gRPC.
//!
//! Flow of a write: `api` validates → `store` changes entities and draws the
//! next version in one transaction → `snapshot::Publisher` hands the new
//! snapshot to every `cluster` stream → data planes ACK or NACK, recorded in
//! the fleet table. Every commit also `NOTIFY`s its version, and `follow`
//! publishes versions committed through other control planes on the same
//! database; `expiry` deletes fleet rows of long-gone data planes.

pub mod api;
pub mod cluster;
pub mod error;
pub mod expiry;
pub mod follow;
pub mod metrics;
pub mod pki;
pub mod seal;
pub mod secret;
pub mod snapshot;
pub mod store;

use std::net::SocketAddr;

pub use error::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::snapshot::Publisher;
use crate::store::Store;

/// Settings of one control-plane process (flags of `turnpike control-plane`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub admin_listen: SocketAddr,
    pub cluster_listen: SocketAddr,
    pub admin_token: Option<String>,
    pub cluster_token: Option<String>,
    /// TLS (and with a client CA, mTLS) on the cluster listener.
    pub cluster_tls: Option<cluster::ClusterTls>,
    /// Fleet rows of data planes not seen for this long are deleted.
    pub data_plane_expiry: std::time::Duration,
}

/// Shared state of the admin API and the cluster service.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub publisher: Publisher,
    pub metrics: Metrics,
}

impl AppState {
    /// The state of one control-plane process; its metrics registered once.
    pub fn new(store: Store, publisher: Publisher) -> AppState {
        let metrics = Metrics::new(&store);
        AppState {
            store,
            publisher,
            metrics,
        }
    }
}

/// A started control plane: its bound addresses, and a handle to wait on.
pub struct Running {
    pub admin_addr: SocketAddr,
    pub cluster_addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    pub async fn wait(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }
}

/// Connects to Postgres (creating the database and running migrations),
/// sets up the tokens, binds both listeners and serves until `shutdown`
/// turns true.
pub async fn start(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<Running, Error> {
    let store = Store::connect(&settings.database_url).await?;
    let tokens = secret::bootstrap(
        &store,
        settings.admin_token.as_deref(),
        settings.cluster_token.as_deref(),
    )
    .await?;
    for line in tokens.announcements() {
        // Printed once, on purpose not through the logger: secrets never go
        // to logs.
        eprintln!("{line}");
    }
    let current = store.ensure_initial_version().await?;
    let publisher = Publisher::new(current);
    let state = AppState::new(store, publisher);

    let admin = TcpListener::bind(settings.admin_listen).await?;
    let cluster = TcpListener::bind(settings.cluster_listen).await?;
    let admin_addr = admin.local_addr()?;
    let cluster_addr = cluster.local_addr()?;
    tracing::info!(%admin_addr, %cluster_addr, "control plane listening");

    let secrets = turnpike_proto::ClusterSecrets {
        key_auth_pepper: state.store.key_auth_pepper().await?,
    };
    let cluster_state =
        cluster::ClusterService::new(state.clone(), tokens.cluster_token_hash, secrets);
    let follower = follow::Follower::new(
        state.store.clone(),
        state.publisher.clone(),
        follow::SAFETY_NET,
    );
    let expiry = expiry::run(
        state.store.clone(),
        settings.data_plane_expiry,
        shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        let heartbeat = tokio::spawn(cluster::heartbeat(cluster_state.clone(), shutdown.clone()));
        let follower = tokio::spawn(follower.run(shutdown.clone()));
        let expiry = tokio::spawn(expiry);
        let grpc = cluster::serve(
            cluster,
            cluster_state,
            settings.cluster_tls,
            shutdown.clone(),
        );
        let api = api::serve(admin, state, shutdown);
        let result = tokio::try_join!(grpc, api).map(|_| ());
        heartbeat.abort();
        follower.abort();
        expiry.abort();
        result
    });
    Ok(Running {
        admin_addr,
        cluster_addr,
        task,
    })
}

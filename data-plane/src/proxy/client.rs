//! Upstream connection pools: one pooled hyper-util client per upstream, kept
//! across config versions as long as its connection settings do not change,
//! so a reload never throws away warm connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use uuid::Uuid;

pub type UpstreamClient = Client<HttpConnector, Incoming>;

/// Idle upstream connections are closed before a typical upstream keep-alive
/// (60 s in nginx) would close them under us (hyper#2136).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_MAX_IDLE_PER_HOST: usize = 256;

#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<(Uuid, u32), Weak<UpstreamClient>>>,
}

impl ClientRegistry {
    /// The client for upstream `id` with this connect timeout; reused when a
    /// live config already holds one. Called while compiling, never on the
    /// request path.
    pub fn get(&self, id: Uuid, connect_ms: u32) -> Arc<UpstreamClient> {
        let mut clients = self.clients.lock().unwrap();
        clients.retain(|_, c| c.strong_count() > 0);
        if let Some(c) = clients.get(&(id, connect_ms)).and_then(Weak::upgrade) {
            return c;
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(u64::from(connect_ms))));
        connector.set_nodelay(true);
        let client = Arc::new(
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                .build(connector),
        );
        clients.insert((id, connect_ms), Arc::downgrade(&client));
        client
    }
}

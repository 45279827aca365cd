//! Test support for the end-to-end tests: start real `turnpike` processes
//! (control plane, data planes, echo upstreams) on loopback, talk to them
//! over HTTP, and wait for conditions instead of sleeping.
//!
//! Every test gets its own database and its own ports, so tests run in
//! parallel.

pub mod binaries;
pub mod counting_upstream;
pub mod http_client;
pub mod process;
pub mod prometheus;
pub mod raw;

use std::future::Future;
use std::time::{Duration, Instant};

pub use counting_upstream::CountingUpstream;
pub use http_client::{Answer, Http};
pub use process::{ControlPlane, DataPlane, Echo, assert_status, drop_database, free_port};

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops its test database when dropped: when the test ends, whatever
/// happens (`let _db = Db(name)` with the name of [`fresh_database_url`]).
pub struct Db(pub String);

impl Drop for Db {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// A database name no other test uses.
pub fn fresh_database_url() -> (String, String) {
    let name = format!("turnpike_e2e_{}", uuid::Uuid::new_v4().simple());
    (format!("postgres://postgres@127.0.0.1:5432/{name}"), name)
}

//! The published version's routes compiled with the data plane's matcher
//! (`turnpike_model::router`), for `GET /api/v1/routes/match`. Built at most
//! once per version, on first use and off the async threads, then kept with
//! that version: when a newer one is published the old one goes with it.

use std::sync::Arc;

use turnpike_model::Snapshot;
use turnpike_model::router::CompiledRouter;

use super::Published;
use crate::Error;

/// One version's routes, ready to match.
#[derive(Debug)]
pub struct Routing {
    /// The decoded snapshot: its routes are in the router's index order.
    pub snapshot: Snapshot,
    pub router: CompiledRouter,
}

impl Routing {
    fn build(p: &Published) -> Result<Arc<Routing>, String> {
        let snapshot =
            Snapshot::decode(p.wire.clone()).map_err(|e| format!("version {}: {e}", p.version))?;
        let router = CompiledRouter::build(&snapshot.routes)
            .map_err(|e| format!("version {}: {e}", p.version))?;
        Ok(Arc::new(Routing { snapshot, router }))
    }
}

impl Published {
    /// This version's compiled routes; the first call builds them.
    pub async fn routing(self: &Arc<Self>) -> Result<Arc<Routing>, Error> {
        let built = match self.routing.get() {
            Some(r) => r.clone(),
            None => {
                let p = self.clone();
                // A large config takes a moment to decode and compile; a
                // concurrent caller waits for the same build.
                tokio::task::spawn_blocking(move || {
                    p.routing.get_or_init(|| Routing::build(&p)).clone()
                })
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
            }
        };
        built.map_err(Error::Internal)
    }
}

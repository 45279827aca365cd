//! Upstream connection pools: one [`Pool`] per upstream, kept across config
//! versions as long as its connection settings do not change, so a reload
//! never throws away warm connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use turnpike_model::{UpstreamProtocol, UpstreamSpec, UpstreamTls};
use uuid::Uuid;

use crate::Error;
use crate::proxy::body::ClientBody;
use crate::proxy::connector::{self, ClientCert};
use crate::proxy::pool::Pool;
use crate::proxy::replay::Resumed;

/// What is sent upstream: the client's body, streamed under the body
/// limits; nothing (a request without a body); a body in memory (rewritten
/// by a policy, or kept so a retry can resend it: `proxy::replay`); or the
/// client's body resumed after `replay` read part of it (boxed: rare, and
/// the other variants stay small).
pub type UpstreamBody = Either<ClientBody, Either<Empty<Bytes>, Either<Full<Bytes>, Box<Resumed>>>>;

/// No body.
pub fn empty() -> UpstreamBody {
    Either::Right(Either::Left(Empty::new()))
}

pub fn streamed(body: ClientBody) -> UpstreamBody {
    Either::Left(body)
}

pub fn whole(body: Bytes) -> UpstreamBody {
    Either::Right(Either::Right(Either::Left(Full::new(body))))
}

pub fn resumed(body: Resumed) -> UpstreamBody {
    Either::Right(Either::Right(Either::Right(Box::new(body))))
}

pub type UpstreamClient = Pool;

/// What a pool's connections depend on: a change to any of it makes a new
/// pool, anything else (targets, weights, read timeout) keeps the old one.
/// `tls` names the client certificate by id; `client_cert` is its content,
/// so a certificate renewed under the same id makes a new pool too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientSettings {
    connect_ms: u32,
    write_ms: u32,
    protocol: UpstreamProtocol,
    tls: Option<UpstreamTls>,
    client_cert: Option<ClientCert>,
}

#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<(Uuid, ClientSettings), Weak<UpstreamClient>>>,
}

impl ClientRegistry {
    /// The client for upstream `id` with these settings and the client
    /// certificate its `tls.client_certificate` names; reused when a live
    /// config already holds one. Called while compiling, never on the
    /// request path.
    pub fn get(
        &self,
        id: Uuid,
        spec: &UpstreamSpec,
        client_cert: Option<ClientCert>,
    ) -> Result<Arc<UpstreamClient>, Error> {
        let settings = ClientSettings {
            connect_ms: spec.timeouts.connect_ms,
            write_ms: spec.timeouts.write_ms,
            protocol: spec.protocol,
            tls: spec.tls.clone(),
            client_cert,
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|_, c| c.strong_count() > 0);
        let key = (id, settings);
        if let Some(c) = clients.get(&key).and_then(Weak::upgrade) {
            return Ok(c);
        }
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        let connector = connector::build(
            ms(spec.timeouts.connect_ms),
            ms(spec.timeouts.write_ms),
            spec.protocol,
            spec.tls.as_ref(),
            key.1.client_cert.as_ref(),
        )?;
        let client = Pool::new(connector, spec.protocol == UpstreamProtocol::Http2);
        clients.insert(key, Arc::downgrade(&client));
        Ok(client)
    }
}

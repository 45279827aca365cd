//! The admin REST API (axum): token auth, entity CRUD, config and fleet
//! views, health and metrics endpoints and the console.

mod admin;
mod cluster_view;
mod credentials;
mod entities;
mod history;
mod import;
mod input;
mod metrics;
pub mod openapi;
mod policy;
mod problem;
mod route_match;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use turnpike_model::{CertificateSpec, ConsumerSpec, PluginSpec, RouteSpec, UpstreamSpec};

pub use entities::VERSION_HEADER;

use crate::{AppState, Error, secret};

/// Who is calling: the name of the admin token, for logs and history.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub read_only: bool,
}

macro_rules! entity_routes {
    ($router:expr, $path:literal, $spec:ty) => {
        $router
            .route(
                $path,
                get(entities::list::<$spec>).post(entities::create::<$spec>),
            )
            .route(
                concat!($path, "/{key}"),
                get(entities::get::<$spec>)
                    .put(entities::replace::<$spec>)
                    .patch(entities::patch::<$spec>)
                    .delete(entities::delete::<$spec>),
            )
    };
}

pub fn router(state: AppState) -> Router {
    // Before `/routes/{key}`: the static segment is the matcher, not a
    // route named `match` (a name the API refuses).
    let api = Router::new().route("/routes/match", get(route_match::handle));
    let api = entity_routes!(api, "/upstreams", UpstreamSpec);
    let api = entity_routes!(api, "/routes", RouteSpec);
    let api = entity_routes!(api, "/consumers", ConsumerSpec);
    let api = entity_routes!(api, "/plugins", PluginSpec);
    let api = entity_routes!(api, "/certificates", CertificateSpec);
    let api = api
        .route("/config", get(cluster_view::config))
        .route("/data-planes", get(cluster_view::data_planes))
        .route("/tokens", get(admin::list_tokens).post(admin::create_token))
        .route(
            "/tokens/{key}",
            get(admin::get_token).delete(admin::delete_token),
        )
        .route("/audit-log", get(admin::audit_log))
        .merge(history::routes())
        .merge(credentials::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));

    Router::new()
        // The API's description is public, like the console page.
        .route("/api/v1/openapi.json", get(openapi::serve))
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        // Public like `/healthz`, for Prometheus; it shows no secret.
        .route("/metrics", get(metrics::serve))
        .route("/", get(console))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(input::MAX_BODY_BYTES))
        // Outermost, so it sees every answer (401s, 404s, 413s included).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

/// Requires `Authorization: Bearer <token>`; read-only tokens may only read.
async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, Error> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Error::Unauthorized)?;
    let (name, role) = state
        .store
        .find_admin_token(&secret::digest(token.trim()))
        .await?
        .ok_or(Error::Unauthorized)?;
    let actor = Actor {
        name,
        read_only: role != "admin",
    };
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if actor.read_only && !reads {
        return Err(Error::Forbidden);
    }
    req.extensions_mut().insert(actor);
    Ok(next.run(req).await)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

async fn not_found(req: Request) -> Error {
    Error::NotFound {
        kind: "resource",
        key: req.uri().path().to_owned(),
    }
}

/// The web console: a static page that talks to this API with the token the
/// operator types in.
async fn console() -> Html<&'static str> {
    Html(include_str!("../../../admin-ui/index.html"))
}

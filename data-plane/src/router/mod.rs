//! Route matching (step 2 of the request path). The matcher itself lives in
//! `turnpike_model::router`, so the control plane's `GET /routes/match`
//! runs the same code; its module documents the precedence rule. A lookup
//! is lock-free and allocates nothing for a lowercase host.

pub use turnpike_model::router::{CompiledRouter, RouteMatch};

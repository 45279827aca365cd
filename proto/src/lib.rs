//! Generated wire types of the config stream (`turnpike.config.v1`).
//!
//! These types stay at the edge: `turnpike-model` converts them into domain
//! types with `TryFrom`, and nothing on the request path sees them.
#![allow(clippy::all, missing_docs, unused_qualifications)]

pub mod config {
    pub mod v1 {
        tonic::include_proto!("turnpike.config.v1");
    }
}

pub use config::v1::*;

/// The `Hello.features` entry of a data plane that applies `Delta`s. The
/// control plane sends deltas only to data planes that list it.
pub const FEATURE_DELTA: &str = "delta";

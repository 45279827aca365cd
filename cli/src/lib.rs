//! The command-line front ends' shared parts: the `turnpike` binary (every
//! role) and `turnpike-data-plane` (the data plane alone) parse the data
//! plane's flags and start it with the same code.

#![forbid(unsafe_code)]

pub mod common;
pub mod data_plane_cmd;
mod malloc;

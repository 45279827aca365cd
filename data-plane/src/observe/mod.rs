//! What the data plane tells operators about the traffic it carries:
//! per-route statistics (`stats`, rendered by the status port's
//! `/metrics`), the access log (`access_log`) and W3C trace context
//! (`trace`), tied to each request by `exchange`. The request path only bumps atomics and, when the access
//! log is on, hands one line to its writer thread.

pub mod access_log;
pub mod exchange;
pub mod stats;
pub mod trace;

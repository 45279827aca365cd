//! `request-size-limit`: lowers the request's body limit to `max_bytes`.
//! The proxy enforces the smallest limit set (this one, `--max-body-bytes`):
//! a `Content-Length` over it is a 413 before anything goes upstream, and a
//! streamed body (chunked, HTTP/2) fails with 413 when it passes it
//! (`proxy::body`). Limit phase, so a consumer-scoped instance applies to
//! that consumer.

use turnpike_model::plugin::request_size_limit::RequestSizeLimitConfig;

use super::{Flow, Phase, Policy, RequestCtx};

pub struct RequestSizeLimit {
    max_bytes: u64,
}

impl RequestSizeLimit {
    pub fn new(config: RequestSizeLimitConfig) -> RequestSizeLimit {
        RequestSizeLimit {
            max_bytes: config.max_bytes,
        }
    }
}

impl Policy for RequestSizeLimit {
    fn name(&self) -> &'static str {
        "request-size-limit"
    }

    fn phase(&self) -> Phase {
        Phase::Limit
    }

    fn priority(&self) -> u16 {
        850
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        ctx.body_limit = Some(
            ctx.body_limit
                .map_or(self.max_bytes, |l| l.min(self.max_bytes)),
        );
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::HeaderMap;

    use super::*;
    use crate::policy::CompiledConsumers;

    fn run(max_bytes: u64, before: Option<u64>) -> Option<u64> {
        let mut parts = http::Request::new(()).into_parts().0;
        let consumers = CompiledConsumers::default();
        let mut ctx = RequestCtx {
            parts: &mut parts,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            route: "r",
            consumers: &consumers,
            consumer: None,
            response_headers: HeaderMap::new(),
            body_limit: before,
        };
        let policy = RequestSizeLimit::new(RequestSizeLimitConfig { max_bytes });
        assert!(matches!(policy.on_request(&mut ctx), Flow::Continue));
        ctx.body_limit
    }

    #[test]
    fn the_smallest_limit_wins() {
        assert_eq!(run(1024, None), Some(1024));
        assert_eq!(run(1024, Some(10)), Some(10));
        assert_eq!(run(1024, Some(1 << 20)), Some(1024));
    }
}

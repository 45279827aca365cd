//! `acl`: allows or denies the identified consumer by its groups. Without
//! an identified consumer (no authentication plugin ran before it) the
//! request is refused: an ACL cannot pass someone it cannot name.

use http::StatusCode;
use turnpike_model::plugin::acl::AclConfig;

use super::{Flow, Phase, Policy, Rejection, RequestCtx};

pub struct Acl {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl Acl {
    pub fn new(config: AclConfig) -> Acl {
        Acl {
            allow: config.allow,
            deny: config.deny,
        }
    }

    fn in_any(groups: &[String], list: &[String]) -> bool {
        list.iter().any(|g| groups.binary_search(g).is_ok())
    }
}

impl Policy for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn priority(&self) -> u16 {
        950
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        let Some(consumer) = &ctx.consumer else {
            return Flow::Reject(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "the acl policy needs an authenticated consumer",
            ));
        };
        let allowed = if self.allow.is_empty() {
            !Self::in_any(&consumer.groups, &self.deny)
        } else {
            Self::in_any(&consumer.groups, &self.allow)
        };
        if allowed {
            Flow::Continue
        } else {
            Flow::Reject(Rejection::new(
                StatusCode::FORBIDDEN,
                "you cannot consume this service",
            ))
        }
    }
}

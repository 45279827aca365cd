//! Which policies run for a request, in which order. Built once per config
//! version: for every route, the plugins that apply to it (a route-scoped
//! plugin replaces a global one of the same name), sorted by phase and
//! priority; and per consumer, the plugins scoped to it (with or without a
//! route), which replace or join the route's from the `limit` phase on,
//! once authentication has named the consumer. Precedence for one plugin
//! name: route and consumer > consumer > route > global.
//!
//! A route without plugins runs nothing and allocates nothing here; a
//! route without a body rewrite never has its bodies read whole.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::Instrument;
use turnpike_model::Snapshot;
use uuid::Uuid;

use super::{
    BodyRewrite, CompiledConsumer, Flow, Phase, Policy, Rejection, RequestCtx, ResponseCtx,
};
use crate::Error;
use crate::observe::spans;

type Entry = Arc<dyn Policy>;

/// A consumer-scoped plugin; `route` is an index into the routes, `None`
/// for every route.
struct Scoped {
    route: Option<usize>,
    policy: Entry,
}

#[derive(Default)]
pub struct CompiledPolicies {
    /// Per route (index-aligned with `Compiled::routes`), sorted.
    by_route: Vec<Vec<Entry>>,
    by_consumer: HashMap<Uuid, Vec<Scoped>>,
    /// A consumer-scoped plugin looks at responses: any route may need the
    /// response phase, whatever its own chain.
    consumer_responds: bool,
    /// Per route: whether a policy may rewrite request / response bodies
    /// (consumer-scoped ones included).
    bodies: Vec<Bodies>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Bodies {
    request: bool,
    response: bool,
}

impl Bodies {
    fn of(p: &Entry) -> Bodies {
        Bodies {
            request: p.request_body().is_some(),
            response: p.response_body().is_some(),
        }
    }

    fn or(self, o: Bodies) -> Bodies {
        Bodies {
            request: self.request || o.request,
            response: self.response || o.response,
        }
    }
}

/// The request hooks' order: access (the route's own), limit, rewrite.
const REQUEST_ORDER: [Phase; 3] = [Phase::Access, Phase::Limit, Phase::Rewrite];
/// The response hooks' order: the response phase, then the policies of
/// other phases that also see the answer, in the route's order.
const RESPONSE_ORDER: [Phase; 4] = [Phase::Response, Phase::Access, Phase::Limit, Phase::Rewrite];

fn order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    (a.phase(), std::cmp::Reverse(a.priority())).cmp(&(b.phase(), std::cmp::Reverse(b.priority())))
}

impl CompiledPolicies {
    /// `routes` maps a route id (as the snapshot writes it) to its index.
    pub fn build(
        snapshot: &Snapshot,
        routes: &HashMap<String, usize>,
        route_count: usize,
    ) -> Result<CompiledPolicies, Error> {
        let mut global: HashMap<&str, Entry> = HashMap::new();
        let mut per_route: Vec<HashMap<&str, Entry>> = vec![HashMap::new(); route_count];
        let mut by_consumer: HashMap<Uuid, Vec<Scoped>> = HashMap::new();
        for plugin in snapshot.plugins.iter().filter(|p| p.spec.enabled) {
            let policy = super::compile(plugin)?;
            let route = match &plugin.spec.route {
                None => None,
                Some(r) => Some(*routes.get(r).ok_or_else(|| {
                    Error::Compile(format!("plugin {}: unknown route {r}", plugin.id))
                })?),
            };
            let name = plugin.spec.name.as_str();
            match (&plugin.spec.consumer, route) {
                (None, None) => {
                    global.insert(name, policy);
                }
                (None, Some(i)) => {
                    per_route[i].insert(name, policy);
                }
                (Some(c), route) => {
                    let id = Uuid::parse_str(c).map_err(|_| {
                        Error::Compile(format!("plugin {}: consumer {c} is not an id", plugin.id))
                    })?;
                    by_consumer
                        .entry(id)
                        .or_default()
                        .push(Scoped { route, policy });
                }
            }
        }
        let by_route: Vec<Vec<Entry>> = per_route
            .into_iter()
            .map(|mut own| {
                for (name, p) in &global {
                    own.entry(name).or_insert_with(|| p.clone());
                }
                let mut chain: Vec<Entry> = own.into_values().collect();
                chain.sort_by(order);
                chain
            })
            .collect();
        for scoped in by_consumer.values_mut() {
            // Route-specific first, so the first match by name is the most
            // specific one.
            scoped.sort_by_key(|s| s.route.is_none());
        }
        let consumer_responds = by_consumer.values().flatten().any(|s| s.policy.responds());
        let consumer_bodies = by_consumer
            .values()
            .flatten()
            .fold(Bodies::default(), |b, s| b.or(Bodies::of(&s.policy)));
        let bodies = by_route
            .iter()
            .map(|chain| {
                chain
                    .iter()
                    .fold(consumer_bodies, |b, p| b.or(Bodies::of(p)))
            })
            .collect();
        Ok(CompiledPolicies {
            by_route,
            by_consumer,
            consumer_responds,
            bodies,
        })
    }

    /// Whether the route has policies with request phases to run. A route
    /// with none runs no consumer's either: only a policy of the route
    /// identifies a consumer.
    pub fn has_request(&self, route: usize) -> bool {
        self.by_route.get(route).is_some_and(|c| !c.is_empty())
    }

    /// Whether the route has policies that look at the response.
    pub fn has_response(&self, route: usize) -> bool {
        self.consumer_responds
            || self
                .by_route
                .get(route)
                .is_some_and(|c| c.iter().any(|p| p.responds()))
    }

    /// Whether a policy on the route may rewrite request bodies.
    pub fn rewrites_request_body(&self, route: usize) -> bool {
        self.bodies.get(route).is_some_and(|b| b.request)
    }

    /// Whether a policy on the route may rewrite response bodies.
    pub fn rewrites_response_body(&self, route: usize) -> bool {
        self.bodies.get(route).is_some_and(|b| b.response)
    }

    /// The log phase: whether the access-log line of an answer on this
    /// route, for this consumer, with this status is written (`access-log`;
    /// the consumer's replaces the route's). No policy: yes.
    pub fn logs(&self, route: usize, consumer: Option<&CompiledConsumer>, status: u16) -> bool {
        self.ordered(route, consumer, &[Phase::Log])
            .all(|p| p.on_log(status))
    }

    /// The request body rewrites for this route and consumer, in the
    /// order of the request phases.
    pub fn request_bodies<'a>(
        &'a self,
        route: usize,
        consumer: Option<&CompiledConsumer>,
    ) -> impl Iterator<Item = &'a dyn BodyRewrite> + 'a {
        self.ordered(route, consumer, &REQUEST_ORDER)
            .filter_map(|p| p.request_body())
    }

    /// The response body rewrites for this route and consumer, in the
    /// order of the response hooks.
    pub fn response_bodies<'a>(
        &'a self,
        route: usize,
        consumer: Option<&CompiledConsumer>,
    ) -> impl Iterator<Item = &'a dyn BodyRewrite> + 'a {
        self.ordered(route, consumer, &RESPONSE_ORDER)
            .filter_map(|p| p.response_body())
    }

    /// Runs the request phases; the first rejection is the answer.
    pub async fn run_request(
        &self,
        route: usize,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<(), Rejection> {
        self.request_phases(route, ctx)
            .await
            .map_err(|(r, plugin)| {
                super::rejections::count(plugin, r.status);
                r
            })
    }

    /// The request phases, each that has policies to run in a `policy`
    /// span; a refusal comes with the plugin that gave it.
    async fn request_phases(
        &self,
        route: usize,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<(), (Rejection, &'static str)> {
        let chain = match self.by_route.get(route) {
            Some(c) => c.as_slice(),
            None => &[],
        };
        if chain.iter().any(|p| p.phase() == Phase::Access) {
            access(chain, ctx)
                .instrument(spans::policy(Phase::Access))
                .await?;
        }
        let scoped = self.scoped(ctx.consumer.as_deref());
        for phase in [Phase::Limit, Phase::Rewrite] {
            let mut policies = self.in_phase(chain, scoped, route, phase).peekable();
            if policies.peek().is_some() {
                limit_or_rewrite(policies, ctx)
                    .instrument(spans::policy(phase))
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs the response phase, then the route's policies of other phases
    /// that also see the answer (`Policy::responds`).
    pub fn run_response(
        &self,
        route: usize,
        consumer: Option<&CompiledConsumer>,
        ctx: &mut ResponseCtx<'_>,
    ) {
        let mut policies = self
            .ordered(route, consumer, &RESPONSE_ORDER)
            .filter(|p| p.responds())
            .peekable();
        if policies.peek().is_none() {
            return;
        }
        let _span = spans::policy(Phase::Response).entered();
        for p in policies {
            p.on_response(ctx);
        }
    }

    /// The route's policies (each replaced by the consumer's of its name)
    /// and the consumer's, phase by phase in `phases`; consumer-scoped
    /// plugins do not apply in the access phase.
    fn ordered<'a>(
        &'a self,
        route: usize,
        consumer: Option<&CompiledConsumer>,
        phases: &'a [Phase],
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let chain = match self.by_route.get(route) {
            Some(c) => c.as_slice(),
            None => &[],
        };
        let scoped = self.scoped(consumer);
        phases.iter().flat_map(move |&phase| {
            let scoped = if phase == Phase::Access { &[] } else { scoped };
            self.in_phase(chain, scoped, route, phase)
        })
    }

    fn scoped(&self, consumer: Option<&CompiledConsumer>) -> &[Scoped] {
        consumer
            .and_then(|c| self.by_consumer.get(&c.id))
            .map_or(&[], Vec::as_slice)
    }

    /// The policies of `phase` for this route and consumer: the route's,
    /// each replaced by the consumer's of the same name if it has one, then
    /// the consumer's that the route does not have.
    fn in_phase<'a>(
        &'a self,
        chain: &'a [Entry],
        scoped: &'a [Scoped],
        route: usize,
        phase: Phase,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let applies = move |s: &&Scoped| s.route.is_none_or(|r| r == route);
        let own = chain
            .iter()
            .filter(move |p| p.phase() == phase)
            .map(move |p| {
                scoped
                    .iter()
                    .filter(applies)
                    .find(|s| s.policy.name() == p.name())
                    .map_or(p, |s| &s.policy)
            });
        let first_of_name = move |s: &&Scoped| {
            scoped
                .iter()
                .filter(applies)
                .find(|t| t.policy.name() == s.policy.name())
                .is_some_and(|t| std::ptr::eq(t, *s))
        };
        let extra = scoped
            .iter()
            .filter(applies)
            .filter(move |s| s.policy.phase() == phase)
            .filter(move |s| !chain.iter().any(|p| p.name() == s.policy.name()))
            .filter(first_of_name)
            .map(|s| &s.policy);
        own.chain(extra)
    }
}

/// Access: authentication plugins until one names the consumer.
async fn access(
    chain: &[Entry],
    ctx: &mut RequestCtx<'_>,
) -> Result<(), (Rejection, &'static str)> {
    let mut absent: Option<(Rejection, &'static str)> = None;
    for p in chain.iter().filter(|p| p.phase() == Phase::Access) {
        if p.authenticates() && ctx.consumer.is_some() {
            continue;
        }
        // The first plugin after the authentication ones: if none of
        // them named a consumer, their refusal (with its challenge)
        // stands, before this one runs.
        if !p.authenticates()
            && ctx.consumer.is_none()
            && let Some(r) = absent.take()
        {
            return Err(r);
        }
        let by = |r| (r, p.name());
        match p.on_request(ctx) {
            Flow::Continue => {}
            Flow::Absent(r) => {
                absent = Some(by(r));
                continue;
            }
            Flow::Reject(r) => return Err(by(r)),
            Flow::Wait(f) => ctx.response_headers.extend(f.await.map_err(by)?),
            Flow::Identify(f) => ctx.consumer = Some(f.await.map_err(by)?),
        }
    }
    match absent {
        Some(r) if ctx.consumer.is_none() => Err(r),
        _ => Ok(()),
    }
}

/// The limit or rewrite phase: any refusal is the answer.
async fn limit_or_rewrite<'a>(
    policies: impl Iterator<Item = &'a Entry>,
    ctx: &mut RequestCtx<'_>,
) -> Result<(), (Rejection, &'static str)> {
    for p in policies {
        let by = |r| (r, p.name());
        match p.on_request(ctx) {
            Flow::Continue => {}
            Flow::Absent(r) | Flow::Reject(r) => return Err(by(r)),
            Flow::Wait(f) => ctx.response_headers.extend(f.await.map_err(by)?),
            Flow::Identify(f) => ctx.consumer = Some(f.await.map_err(by)?),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;

//! The checks of a declarative document across entities: unique names and
//! certificate ids, references to entities of the same document, one
//! plugin of a name per scope, unique credential keys and SNIs.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use super::Entry;
use crate::{
    CertificateSpec, ConsumerSpec, CredentialKind, PluginSpec, RouteSpec, UpstreamSpec,
    ValidationErrors,
};

/// The `id` of each certificate entry (taken out of it before its spec was
/// parsed, into `nested`): a UUID, or absent.
pub(super) fn certificate_ids(
    entries: &[Entry<CertificateSpec>],
    errors: &mut ValidationErrors,
) -> Vec<Option<Uuid>> {
    let parse = |(i, e): (usize, &Entry<CertificateSpec>)| match &e.nested {
        None | Some(Value::Null) => None,
        Some(v) => {
            let id = v.as_str().and_then(|s| Uuid::parse_str(s).ok());
            if id.is_none() {
                errors.push(format!("certificates[{i}].id"), "must be a UUID");
            }
            id
        }
    };
    entries.iter().enumerate().map(parse).collect()
}

/// The parsed entries of a document, for the checks across entities.
pub(super) struct Whole<'a> {
    pub(super) upstreams: &'a [Entry<UpstreamSpec>],
    pub(super) routes: &'a [(Entry<RouteSpec>, Vec<Option<PluginSpec>>)],
    pub(super) consumers: &'a [(Entry<ConsumerSpec>, Vec<Option<CredentialKind>>)],
    pub(super) plugins: &'a [Entry<PluginSpec>],
    pub(super) certificates: &'a [Entry<CertificateSpec>],
    /// Index-aligned with `certificates`.
    pub(super) certificate_ids: &'a [Option<Uuid>],
}

impl Whole<'_> {
    /// Unique names per kind; references to entities of this document; one
    /// plugin of a name per scope; unique credential keys and SNIs.
    pub(super) fn check(&self, errors: &mut ValidationErrors) {
        let upstream_names = unique_names("upstreams", "name", self.upstreams.iter(), errors);
        unique_names("routes", "name", self.routes.iter().map(|r| &r.0), errors);
        let usernames = unique_names(
            "consumers",
            "username",
            self.consumers.iter().map(|c| &c.0),
            errors,
        );
        for (i, (r, _)) in self.routes.iter().enumerate() {
            let Some(r) = &r.spec else { continue };
            // An empty reference was reported by the route's own validation.
            if !r.upstream.trim().is_empty() && !upstream_names.contains_key(r.upstream.as_str()) {
                errors.push(
                    format!("routes[{i}].upstream"),
                    format!("no upstream named '{}' in this document", r.upstream),
                );
            }
        }
        let mut scopes = HashMap::new();
        let global = self.plugins.iter().enumerate();
        let global = global.map(|(i, p)| (format!("plugins[{i}]"), None, p.spec.as_ref()));
        let in_routes = self
            .routes
            .iter()
            .enumerate()
            .flat_map(|(i, (r, plugins))| {
                let route = r.name.as_deref();
                let list = plugins.iter().enumerate();
                list.map(move |(j, p)| (format!("routes[{i}].plugins[{j}]"), route, p.as_ref()))
            });
        for (path, route, p) in global.chain(in_routes) {
            let Some(p) = p else { continue };
            if p.route.is_some() {
                let msg = match route {
                    None => "route plugins go in their route's plugins list",
                    Some(_) => "leave it out: the enclosing route is the scope",
                };
                errors.push(format!("{path}.route"), msg);
            }
            if let Some(c) = &p.consumer
                && !usernames.contains_key(c.as_str())
            {
                errors.push(
                    format!("{path}.consumer"),
                    format!("no consumer with username '{c}' in this document"),
                );
            }
            let scope = (p.name.as_str(), route, p.consumer.as_deref());
            if let Some(first) = scopes.insert(scope, path.clone()) {
                errors.push(
                    format!("{path}.name"),
                    format!("a second '{}' plugin in the scope of {first}", p.name),
                );
            }
        }
        self.check_credentials_and_snis(errors);
        self.check_client_certificates(errors);
    }

    /// Certificate ids are unique, and an upstream's `tls.client_certificate`
    /// is the id of a certificate of this document (an import replaces the
    /// whole config: a certificate left out is deleted).
    fn check_client_certificates(&self, errors: &mut ValidationErrors) {
        let mut ids = HashMap::new();
        for (i, id) in self.certificate_ids.iter().enumerate() {
            let Some(id) = id else { continue };
            if let Some(j) = ids.get(id) {
                errors.push(
                    format!("certificates[{i}].id"),
                    format!("duplicate id (also certificates[{j}])"),
                );
            } else {
                ids.insert(*id, i);
            }
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            let wanted = u
                .spec
                .as_ref()
                .and_then(|s| s.tls.as_ref()?.client_certificate);
            if let Some(id) = wanted
                && !ids.contains_key(&id)
            {
                errors.push(
                    format!("upstreams[{i}].tls.client_certificate"),
                    format!("no certificate with id '{id}' in this document"),
                );
            }
        }
    }

    fn check_credentials_and_snis(&self, errors: &mut ValidationErrors) {
        let mut lookups = HashMap::new();
        for (i, (_, creds)) in self.consumers.iter().enumerate() {
            for (j, c) in creds.iter().enumerate() {
                let Some(c) = c else { continue };
                let lookup = match c {
                    CredentialKind::KeyAuth(k) => k.key.as_deref().or(k.key_digest.as_deref()),
                    other => other.lookup(),
                };
                let Some(lookup) = lookup else { continue };
                let path = format!("consumers[{i}].credentials[{j}]");
                if let Some(first) = lookups.insert((c.type_name(), lookup), path.clone()) {
                    errors.push(path, format!("the same {} key as {first}", c.type_name()));
                }
            }
        }
        let mut snis = HashMap::new();
        for (i, c) in self.certificates.iter().enumerate() {
            let Some(c) = &c.spec else { continue };
            for (j, sni) in c.snis.iter().enumerate() {
                let path = format!("certificates[{i}].snis[{j}]");
                if let Some(first) = snis.insert(sni.as_str(), path.clone()) {
                    errors.push(path, format!("also in {first}"));
                }
            }
        }
    }
}

/// Reports every name used twice in `kind`; returns each name's first index.
fn unique_names<'a, S: 'a>(
    kind: &str,
    field: &str,
    entries: impl Iterator<Item = &'a Entry<S>>,
    errors: &mut ValidationErrors,
) -> HashMap<&'a str, usize> {
    let mut first = HashMap::new();
    let names = entries.enumerate();
    for (i, name) in names.filter_map(|(i, e)| Some((i, e.name.as_deref()?))) {
        if let Some(j) = first.get(name) {
            errors.push(
                format!("{kind}[{i}].{field}"),
                format!("duplicate {field} '{name}' (also {kind}[{j}])"),
            );
        } else {
            first.insert(name, i);
        }
    }
    first
}

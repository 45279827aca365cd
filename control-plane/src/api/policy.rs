//! What the generic entity CRUD needs to know about consumers, plugins and
//! certificates: their checks, references and how they are shown.
//!
//! Plugins and certificates have no unique name, so `{id-or-name}` is an id
//! for them (anything else is a 404). A certificate's key is write-only:
//! reads show `key_sha256` and the parsed subject, issuer and validity.

use chrono::Utc;
use serde_json::Value;
use turnpike_model::credential::sha256_hex;
use turnpike_model::{CertificateSpec, ConsumerSpec, PluginSpec};

use super::entities::ApiEntity;
use crate::store::{EntityKind, Refs, Stored, WriteTx};
use crate::{Error, pki};

impl ApiEntity for ConsumerSpec {
    fn check(&mut self, _existing: Option<&Self>) -> Result<(), Error> {
        Ok(self.validate()?)
    }

    async fn resolve(&mut self, _tx: &mut WriteTx) -> Result<Refs, Error> {
        Ok(Refs::default())
    }
}

impl ApiEntity for PluginSpec {
    fn check(&mut self, _existing: Option<&Self>) -> Result<(), Error> {
        self.normalize();
        Ok(self.validate()?)
    }

    /// Stores the route and consumer by id, so renaming them never breaks
    /// the plugin; the reference columns make deleting them a 409.
    async fn resolve(&mut self, tx: &mut WriteTx) -> Result<Refs, Error> {
        let mut refs = Refs::default();
        if let Some(key) = &self.route {
            let id = tx.resolve(EntityKind::Route, key).await?.ok_or_else(|| {
                Error::field("route", format!("no route with id or name '{key}'"))
            })?;
            self.route = Some(id.to_string());
            refs.route = Some(id);
        }
        if let Some(key) = &self.consumer {
            let id = tx
                .resolve(EntityKind::Consumer, key)
                .await?
                .ok_or_else(|| {
                    Error::field(
                        "consumer",
                        format!("no consumer with id or username '{key}'"),
                    )
                })?;
            self.consumer = Some(id.to_string());
            refs.consumer = Some(id);
        }
        Ok(refs)
    }
}

impl ApiEntity for CertificateSpec {
    const DERIVED: &'static [&'static str] = &["subject", "issuer", "not_before", "not_after"];

    fn check(&mut self, existing: Option<&Self>) -> Result<(), Error> {
        self.normalize();
        inherit_key(self, existing);
        self.validate()?;
        let Some(key) = self.key.as_deref() else {
            // Only a digest that matches no stored key is left.
            return Err(Error::field(
                "key_sha256",
                "matches no stored key; give the key",
            ));
        };
        // A certificate already stored may have expired since; re-checking
        // its dates would block editing its tags. A new one must be valid.
        let changed = existing.is_none_or(|e| e.cert != self.cert);
        pki::check_certificate(&self.cert, key, changed.then(Utc::now))?;
        Ok(())
    }

    async fn resolve(&mut self, _tx: &mut WriteTx) -> Result<Refs, Error> {
        Ok(Refs::default())
    }

    fn view(stored: &Stored<Self>) -> Value {
        let mut shown = stored.clone();
        shown.spec.redact();
        let mut v = serde_json::to_value(&shown).unwrap_or_default();
        if let (Ok(info), Some(map)) = (pki::certificate_info(&stored.spec.cert), v.as_object_mut())
            && let Ok(Value::Object(info)) = serde_json::to_value(info)
        {
            map.extend(info);
        }
        v
    }
}

/// The key is write-only: on PUT and PATCH, no key, or the `key_sha256` a
/// read showed, keeps the stored key.
fn inherit_key(spec: &mut CertificateSpec, existing: Option<&CertificateSpec>) {
    let Some(old) = existing.and_then(|e| e.key.as_deref()) else {
        return;
    };
    let digest = sha256_hex(old.as_bytes());
    let shown = spec.key_sha256.as_deref().map(str::to_ascii_lowercase);
    match (spec.key.as_deref(), shown.as_deref()) {
        (None, None) => spec.key = Some(old.to_owned()),
        (None, Some(d)) | (Some(_), Some(d))
            if d == digest && spec.key.as_deref().is_none_or(|k| k == old) =>
        {
            spec.key = Some(old.to_owned());
            spec.key_sha256 = None;
        }
        _ => {}
    }
}

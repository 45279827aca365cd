//! Schemas written by hand: the ones whose shape is decided at the API's
//! edge (the credential union, certificate reads) and those of the
//! whole-config endpoints (history, diff, declarative document).

use serde_json::{Value, json};
use turnpike_model::JwtAlgorithm;

use super::{ENTITIES, list_of};

/// Reads of a certificate never show its key; they add what the PEM says.
pub(super) fn certificate_view(object: &mut Value) {
    if let Some(props) = object["properties"].as_object_mut() {
        props.remove("key");
        for (name, format) in [
            ("subject", None),
            ("issuer", None),
            ("not_before", Some("date-time")),
            ("not_after", Some("date-time")),
        ] {
            let mut p = json!({"type": "string", "description": "from the leaf certificate"});
            if let Some(f) = format {
                p["format"] = json!(f);
            }
            props.insert(name.into(), p);
        }
    }
    if let Some(required) = object["required"].as_array_mut() {
        required.retain(|r| r != "key");
    }
}

/// Credentials are a tagged union written by hand: `type` picks the
/// fields. Inputs list every field the API accepts (fields a read shows are
/// accepted and ignored, so a read can be sent back); secrets are inputs
/// only and never part of a read.
pub(super) fn credentials(out: &mut Value) {
    let ignored = json!({"description": "shown by reads; ignored on input"});
    let input = |kind: &str, props: Value, required: &[&str]| {
        let mut p = props;
        p["type"] = json!({"const": kind});
        for f in ["created_at", "updated_at", "consumer", "has_secret"] {
            p[f] = ignored.clone();
        }
        let mut req = vec![json!("type")];
        req.extend(required.iter().map(|r| json!(r)));
        json!({"type": "object", "additionalProperties": false, "required": req, "properties": p})
    };
    out["KeyAuthInput"] = input(
        "key-auth",
        json!({
            "key": {"type": "string", "description": "at least 16 visible ASCII characters; generated (and shown once) when absent"},
            "key_digest": {"type": "string", "description": "HMAC-SHA256 of a key under this cluster's pepper, to restore an exported credential"},
            "key_prefix": {"type": "string", "description": "with key_digest only"}
        }),
        &[],
    );
    out["BasicAuthInput"] = input(
        "basic-auth",
        json!({
            "username": {"type": "string", "description": "no ':'"},
            "password": {"type": "string", "description": "at least 8 characters; stored as Argon2id"},
            "password_hash": {"type": "string", "description": "an Argon2id PHC string"}
        }),
        &["username"],
    );
    let algorithms: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    out["JwtInput"] = input(
        "jwt",
        json!({
            "key": {"type": "string", "description": "the `iss` claim or `kid` header this credential answers to"},
            "algorithm": {"type": "string", "enum": algorithms, "default": "HS256"},
            "secret": {"type": "string", "description": "HS*: the shared secret, at least 32 bytes"},
            "public_key": {"type": "string", "description": "RS*/ES*: a PEM public key"}
        }),
        &["key"],
    );
    out["CredentialInput"] = json!({
        "oneOf": [
            {"$ref": "#/components/schemas/KeyAuthInput"},
            {"$ref": "#/components/schemas/BasicAuthInput"},
            {"$ref": "#/components/schemas/JwtInput"}
        ],
        "discriminator": {"propertyName": "type", "mapping": {
            "key-auth": "#/components/schemas/KeyAuthInput",
            "basic-auth": "#/components/schemas/BasicAuthInput",
            "jwt": "#/components/schemas/JwtInput"
        }}
    });
    let nullable = json!({"type": ["string", "null"]});
    out["Credential"] = json!({
        "type": "object",
        "description": "A credential as reads show it: never its secret",
        "required": ["id", "consumer", "type", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "consumer": {"type": "string", "format": "uuid"},
            "type": {"type": "string", "enum": ["key-auth", "basic-auth", "jwt"]},
            "key_prefix": nullable.clone(),
            "username": {"type": "string"},
            "has_secret": {"type": "boolean"},
            "key": {"type": "string", "description": "jwt: the iss/kid; key-auth: the key, in the create response only"},
            "algorithm": {"type": "string", "enum": algorithms},
            "public_key": nullable,
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    });
    out["CredentialList"] = list_of("Credential", "string");
    // In diffs and history: the stored form, secrets sealed or redacted.
    out["CredentialSpec"] = json!({
        "type": "object",
        "required": ["consumer", "type"],
        "properties": {
            "consumer": {"type": "string", "format": "uuid"},
            "type": {"type": "string", "enum": ["key-auth", "basic-auth", "jwt"]}
        }
    });
}

/// Schemas of the whole-config endpoints; the per-kind parts follow
/// [`ENTITIES`], as `model::diff` and `model::declarative` do.
pub(super) fn history(out: &mut Value) {
    let entry = json!({
        "type": "object",
        "required": ["version", "hash", "created_at", "author", "summary"],
        "properties": {
            "version": {"type": "integer"},
            "hash": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "author": {"type": "string"},
            "summary": {"type": "string"}
        }
    });
    let mut detail = entry.clone();
    detail["properties"]["config"] = json!({"$ref": "#/components/schemas/Document"});
    detail["required"]
        .as_array_mut()
        .expect("array")
        .push(json!("config"));
    out["VersionEntry"] = entry;
    out["VersionPage"] = list_of("VersionEntry", "string");
    out["VersionDetail"] = detail;
    out["FieldChange"] = json!({
        "type": "object",
        "required": ["field", "from", "to"],
        "properties": {"field": {"type": "string", "examples": ["targets[0].address"]}, "from": {}, "to": {}}
    });
    let id_name = json!({"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}});
    let mut diff_props = serde_json::Map::new();
    let mut doc_props = serde_json::Map::new();
    doc_props.insert(
        "format_version".into(),
        json!({"type": "string", "enum": ["1"]}),
    );
    for (collection, spec, _) in ENTITIES {
        diff_props.insert(collection.into(), kind_diff(&id_name, spec));
        // YAML users write an empty key as `plugins:`, which is null.
        doc_props.insert(
            collection.into(),
            json!({"type": ["array", "null"], "items": {"$ref": format!("#/components/schemas/{spec}")}}),
        );
    }
    diff_props.insert("credentials".into(), kind_diff(&id_name, "CredentialSpec"));
    // Routes with their plugins; the policy kinds are described in
    // docs/admin-api.md until they get schemas of their own.
    doc_props.insert(
        "routes".into(),
        json!({"type": ["array", "null"], "items": {"$ref": "#/components/schemas/DocumentRoute"}}),
    );
    for kind in ["consumers", "plugins", "certificates"] {
        doc_props.insert(
            kind.into(),
            json!({"type": ["array", "null"], "items": {"type": "object"}}),
        );
    }
    out["ConfigDiff"] = json!({"type": "object", "properties": diff_props});
    out["Document"] = json!({
        "type": "object",
        "description": "The declarative config: entities by name, no ids, but for certificates (which have no name; an upstream's tls.client_certificate is one's id). Routes name their upstream.",
        "required": ["format_version"],
        "properties": doc_props
    });
    out["Applied"] = json!({
        "type": "object",
        "required": ["version", "diff"],
        "properties": {
            "dry_run": {"type": "boolean"},
            "version": {"type": "integer", "description": "the version now current (unchanged on a dry run)"},
            "diff": {"$ref": "#/components/schemas/ConfigDiff"}
        }
    });
    out["RollbackRequest"] = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["version"],
        "properties": {"version": {"type": "integer", "minimum": 1}}
    });
}

/// The `added`, `removed` and `changed` lists of one kind in a diff.
fn kind_diff(id_name: &Value, spec: &str) -> Value {
    let mut added = json!({"type": "object", "required": ["id", "name", "spec"], "properties": id_name.clone()});
    added["properties"]["spec"] = json!({"$ref": format!("#/components/schemas/{spec}")});
    let mut changed = added.clone();
    changed["properties"]["fields"] =
        json!({"type": "array", "items": {"$ref": "#/components/schemas/FieldChange"}});
    changed["required"]
        .as_array_mut()
        .expect("array")
        .push(json!("fields"));
    json!({
        "type": "object",
        "required": ["added", "removed", "changed"],
        "properties": {
            "added": {"type": "array", "items": added},
            "removed": {"type": "array", "items": {"type": "object", "required": ["id", "name"], "properties": id_name}},
            "changed": {"type": "array", "items": changed}
        }
    })
}

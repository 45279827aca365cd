//! The crate's one error enum, and the field-path validation errors the admin
//! API turns into problem+json and the data plane into a NACK.

use std::fmt;

use serde::Serialize;

/// One failing field: `field` is a path such as `targets[0].address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every failing field of one entity or snapshot, collected at once so a user
/// fixes them all in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s errors with `prefix` in front of each field path.
    pub fn extend_prefixed(&mut self, prefix: &str, other: ValidationErrors) {
        for e in other.0 {
            let field = if e.field.is_empty() {
                prefix.to_owned()
            } else if e.field.starts_with('[') {
                format!("{prefix}{}", e.field)
            } else {
                format!("{prefix}.{}", e.field)
            };
            self.0.push(FieldError { field, ..e });
        }
    }

    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid config: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("{field}: {message}")]
    Wire { field: String, message: String },
    #[error("hash mismatch: snapshot says {expected}, content hashes to {actual}")]
    HashMismatch { expected: String, actual: String },
    /// A delta computed from another version than the one it is applied to.
    #[error("delta from version {base} does not apply to version {held}")]
    DeltaBase { base: u64, held: u64 },
    #[error("plugin '{0}' is not supported by this data plane version")]
    UnsupportedPlugin(String),
    /// A declarative document that is not well-formed YAML or JSON.
    #[error("malformed {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
}

impl ModelError {
    pub(crate) fn wire(field: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Wire {
            field: field.into(),
            message: message.into(),
        }
    }
}

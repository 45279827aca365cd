//! The control plane's one error enum. `api::problem` is the one place that
//! maps it to HTTP statuses and problem+json bodies.

use turnpike_model::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error("{kind} '{key}' not found")]
    NotFound { kind: &'static str, key: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the object changed since it was read (If-Match does not match its ETag)")]
    PreconditionFailed,
    #[error("missing or invalid admin token")]
    Unauthorized,
    #[error("this token may only read; writes need an admin token")]
    Forbidden,
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// A body in a media type the endpoint does not take; names the ones it does.
    #[error("unsupported Content-Type; send {expected}")]
    UnsupportedContentType { expected: &'static str },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationErrors> for Error {
    fn from(e: ValidationErrors) -> Self {
        Error::Validation(e)
    }
}

impl Error {
    /// A one-field validation error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Error {
        let mut e = ValidationErrors::default();
        e.push(field, message);
        Error::Validation(e)
    }
}

/// Postgres error codes the store turns into API errors.
pub(crate) fn pg_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

pub(crate) const UNIQUE_VIOLATION: &str = "23505";
pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";

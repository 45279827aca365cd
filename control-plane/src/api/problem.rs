//! The one place that maps the control plane's errors to HTTP: RFC 9457
//! problem+json with field paths for validation errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use turnpike_model::FieldError;

use crate::Error;

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Validation(_) | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType | Error::UnsupportedContentType { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => StatusCode::SERVICE_UNAVAILABLE,
            // Text Postgres cannot store (NUL) in a parameter: the client's input.
            Error::Database(e) if is_untranslatable_text(e) => StatusCode::BAD_REQUEST,
            Error::Database(_) | Error::Migrate(_) | Error::Io(_) | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn slug(&self) -> (&'static str, &'static str) {
        match self {
            Error::Validation(_) => ("validation", "Invalid request"),
            Error::BadRequest(_) => ("bad-request", "Bad request"),
            Error::Database(e) if is_untranslatable_text(e) => ("bad-request", "Bad request"),
            Error::Unauthorized => ("unauthorized", "Unauthorized"),
            Error::Forbidden => ("forbidden", "Forbidden"),
            Error::NotFound { .. } => ("not-found", "Not found"),
            Error::Conflict(_) => ("conflict", "Conflict"),
            Error::PreconditionFailed => ("precondition-failed", "Precondition failed"),
            Error::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            Error::UnsupportedMediaType | Error::UnsupportedContentType { .. } => {
                ("unsupported-media-type", "Unsupported media type")
            }
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "Service unavailable")
            }
            _ => ("internal", "Internal error"),
        }
    }
}

/// Postgres' "character not in repertoire" (22021) and "untranslatable
/// character" (22P05): a NUL byte or invalid text in what the client sent.
fn is_untranslatable_text(e: &sqlx::Error) -> bool {
    matches!(crate::error::pg_code(e).as_deref(), Some("22021" | "22P05"))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let (slug, title) = self.slug();
        let detail = if status.is_server_error() {
            // Details of internal failures go to the log, not to clients.
            tracing::error!(error = %self, "admin API request failed");
            "the control plane could not complete the request; see its log".to_owned()
        } else {
            match &self {
                Error::Validation(e) => format!("{} field(s) failed validation", e.0.len()),
                Error::Database(_) => {
                    "the request contains text that cannot be stored (NUL characters)".to_owned()
                }
                other => other.to_string(),
            }
        };
        let errors: &[FieldError] = match &self {
            Error::Validation(e) => &e.0,
            _ => &[],
        };
        let kind = format!("https://turnpike.dev/problems/{slug}");
        let body = serde_json::to_vec(&Problem {
            kind: &kind,
            title,
            status: status.as_u16(),
            detail,
            errors,
        })
        .unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"turnpike-admin\""),
            );
        }
        resp
    }
}

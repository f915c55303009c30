//! The one error type of the application and how it is shown to API clients and browsers.
//!
//! Handlers return [`AppResult`]. An [`AppError`] renders as JSON by default; the web router
//! re-renders it as an HTML page, an htmx-friendly fragment or a redirect to the sign-in page
//! (see `web::render_errors`), using the [`ErrorReport`] it leaves in the response extensions.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result of a fallible handler or domain function.
pub type AppResult<T> = Result<T, AppError>;

/// Field name → messages, as in `{"errors": {"field": ["message"]}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a message against a field.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// A single error on a single field.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Adds every error of `other`.
    pub fn extend(&mut self, other: FieldErrors) {
        for (field, messages) in other.0 {
            self.0.entry(field).or_default().extend(messages);
        }
    }

    /// The value of a field's check, or `None` with its message recorded against `field`.
    pub fn check<T>(&mut self, field: &str, checked: Result<T, String>) -> Option<T> {
        checked.map_err(|m| self.add(field, m)).ok()
    }

    /// Checks a field's value if one was given; `None` when it was not or when it fails (its
    /// message then recorded against `field`).
    pub fn check_given<V: ?Sized, T>(
        &mut self,
        field: &str,
        value: Option<&V>,
        check: impl FnOnce(&V) -> Result<T, String>,
    ) -> Option<T> {
        value.and_then(|v| self.check(field, check(v)))
    }

    /// Records "This field is required." for each field given no value. A complete
    /// submission (create, PUT, a form) needs them; a partial one (PATCH) does not.
    pub fn require<const N: usize>(&mut self, fields: [(&str, bool); N]) {
        for (field, given) in fields {
            if !given {
                self.add(field, "This field is required.");
            }
        }
    }

    /// The first message of a field, for a form's inline error.
    pub fn first(&self, field: &str) -> Option<&str> {
        self.get(field).first().map(String::as_str)
    }

    /// Whether a field has errors.
    pub fn has(&self, field: &str) -> bool {
        !self.get(field).is_empty()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages of one field, for showing them next to its input.
    pub fn get(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `Ok(())` when empty, otherwise a validation error carrying these errors.
    pub fn into_result(self) -> AppResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self))
        }
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No valid session or token.
    #[error("Authentication credentials were not provided or are invalid.")]
    Unauthenticated,
    /// Signed in, but the role does not allow this.
    #[error("You do not have permission to perform this action.")]
    Forbidden,
    /// The session-authenticated request lacks the CSRF token.
    #[error("CSRF token missing or incorrect. Reload the page and try again.")]
    Csrf,
    /// Nothing here, or it belongs to another customer.
    #[error("Not found.")]
    NotFound,
    /// Input failed validation.
    #[error("Invalid input.")]
    Validation(FieldErrors),
    /// Input is unusable as a whole.
    #[error("{0}")]
    BadRequest(String),
    /// Throttled; the client may retry after this many seconds.
    #[error("Too many failed attempts. Try again in {retry_after} seconds.")]
    TooManyRequests {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// The database cannot be reached right now (restart, failover, network): answered
    /// 503 with `Retry-After`, and not logged per request (the availability watch logs the
    /// outage once).
    #[error("The database is unreachable. Try again in a few seconds.")]
    Unavailable(String),
    /// A database failure that is not the client's fault.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Any other failure that is not the client's fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Seconds a client is told to wait when the database is unreachable: a restart or a
/// managed failover usually takes a few.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// Unique and foreign-key constraints named in the migrations, and the field error each
/// violation means.
const CONSTRAINT_ERRORS: &[(&str, &str, &str)] = &[
    (
        "user_customers_customer_id_fkey",
        "customers",
        "No such customer.",
    ),
    (
        "customers_name_key",
        "name",
        "A customer with this name already exists.",
    ),
    (
        "users_username_key",
        "username",
        "A user with this username already exists.",
    ),
    (
        "regions_customer_identifier_key",
        "identifier",
        "A region with this identifier already exists for this customer.",
    ),
    (
        "devices_customer_hostname_key",
        "hostname",
        "A device with this hostname already exists for this customer.",
    ),
    (
        "credentials_customer_name_key",
        "name",
        "A credential with this name already exists for this customer.",
    ),
    (
        "devices_credential_fkey",
        "credential",
        "This credential is used by devices; give them another credential first.",
    ),
    (
        "devices_region_fkey",
        "region",
        "No such region for this device's customer.",
    ),
];

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && let Some(constraint) = db.constraint()
            && let Some((_, field, message)) = CONSTRAINT_ERRORS
                .iter()
                .find(|(name, ..)| *name == constraint)
        {
            return AppError::Validation(FieldErrors::single(*field, *message));
        }
        if matches!(err, sqlx::Error::RowNotFound) {
            return AppError::NotFound;
        }
        if crate::db::is_unavailable(&err) {
            return AppError::Unavailable(err.to_string());
        }
        AppError::Database(err)
    }
}

impl AppError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Validation(_) | AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the client; internals of server errors are never shown.
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() && !matches!(self, AppError::Unavailable(_)) {
            "Something went wrong on our side. It has been logged; try again, and if it persists, \
             tell your administrator."
                .to_string()
        } else {
            self.to_string()
        }
    }
}

/// What the web layer needs to re-render an error as HTML.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// The response status.
    pub status: StatusCode,
    /// Safe-to-show message.
    pub message: String,
    /// Per-field messages of a validation error.
    pub fields: FieldErrors,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a FieldErrors>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::Unavailable(e) => {
                tracing::debug!(error = %e, "request refused: database unreachable");
            }
            // The one place a server error is logged.
            _ if status.is_server_error() => tracing::error!(error = %self, "request failed"),
            _ => {}
        }
        let message = self.public_message();
        let fields = match &self {
            AppError::Validation(fields) => fields.clone(),
            _ => FieldErrors::new(),
        };
        let body = if fields.is_empty() {
            ErrorBody {
                detail: Some(&message),
                errors: None,
            }
        } else {
            ErrorBody {
                detail: None,
                errors: Some(&fields),
            }
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            AppError::TooManyRequests { retry_after } => Some(retry_after),
            AppError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(ErrorReport {
            status,
            message,
            fields,
        });
        response
    }
}

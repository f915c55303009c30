//! The OpenAPI 3.1 description of `/api/v1`, assembled from the handlers' `#[utoipa::path]`
//! attributes and the types they take and return, so it cannot drift from the code.

use std::collections::BTreeMap;

use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, ToSchema};

/// The document's fixed parts; the paths come from the router (see [`super::routes`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "webnet API",
        description = "Regions, devices, credentials and jobs of a multi-region network \
            automation platform. Every request authenticates with `Authorization: Bearer <token>` \
            (create one with `webnet token create <username>`) or with the browser session, in \
            which case unsafe methods also need the `X-CSRF-Token` header. Objects of other \
            customers do not exist for the caller: they are 404, never 403. Lists are paginated \
            as `{count, next, previous, results}` with `?page=` and `?page_size=`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "auth", description = "Who the caller is."),
        (name = "regions", description = "Regions, their health and what runs in them."),
        (name = "devices", description = "Devices, their region, configuration backups and SSH host keys."),
        (name = "credentials", description = "Sign-in credentials for devices; secrets are write-only."),
        (name = "jobs", description = "Jobs, routed to the queues of their devices' regions."),
        (name = "administration", description = "Customers, users, API tokens and the audit trail."),
        (name = "meta", description = "This description of the API."),
    ),
    components(schemas(ErrorDetail, ValidationErrors)),
    security(("bearer" = []), ("session" = [])),
)]
pub(super) struct ApiDoc;

/// An error about the request as a whole.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct ErrorDetail {
    /// What went wrong and what to do about it.
    detail: String,
}

/// Errors by field: each key names a field of the body or query (`filters.site` for a nested
/// one), each value lists what is wrong with it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct ValidationErrors {
    /// Field name → messages.
    errors: BTreeMap<String, Vec<String>>,
}

/// Adds what every operation shares: the security schemes and the error responses that follow
/// from the method and path, so no handler can forget one.
pub(super) struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `webnet token create <username>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::state::SESSION_COOKIE,
                "The browser session of a signed-in user; unsafe methods also need the \
                 `X-CSRF-Token` header.",
            ))),
        );
        let errors = [
            (
                "Invalid",
                "The input is invalid: see `errors` by field, or `detail`.",
                true,
            ),
            ("Unauthenticated", "No valid token or session.", false),
            (
                "Forbidden",
                "The caller's role may not do this (or the session's CSRF token is missing).",
                false,
            ),
            (
                "NotFound",
                "No such object for this caller (another customer's objects are not found either).",
                false,
            ),
        ];
        for (name, description, invalid) in errors {
            components.responses.insert(
                name.to_string(),
                RefOr::T(error_response(description, invalid)),
            );
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_id = path.contains('{');
            // One handler serves PUT and PATCH; operation ids must stay unique.
            if let (Some(put), Some(patch)) = (&item.put, &mut item.patch)
                && put.operation_id == patch.operation_id
            {
                patch.operation_id = put.operation_id.as_ref().map(|id| format!("{id}_fields"));
            }
            let operations = [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Delete, &mut item.delete),
                (HttpMethod::Patch, &mut item.patch),
            ];
            for (method, op) in operations {
                if let Some(op) = op {
                    add_error_responses(method, op, has_id);
                }
            }
        }
    }
}

fn error_response(description: &str, invalid: bool) -> Response {
    let schema = if invalid {
        RefOr::T(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(Ref::from_schema_name("ValidationErrors"))
                .item(Ref::from_schema_name("ErrorDetail"))
                .into(),
        )
    } else {
        RefOr::Ref(Ref::from_schema_name("ErrorDetail"))
    };
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
}

fn add_error_responses(method: HttpMethod, op: &mut Operation, has_id: bool) {
    let takes_input = op.request_body.is_some()
        || op.parameters.as_ref().is_some_and(|p| {
            p.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query))
        });
    let mut responses = std::mem::take(&mut op.responses);
    if let Some(RefOr::T(created)) = responses.responses.get_mut("201") {
        created.headers.insert(
            "Location".to_string(),
            RefOr::T(
                utoipa::openapi::HeaderBuilder::new()
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::Type::String),
                    ))
                    .description(Some("The new object's URL."))
                    .build(),
            ),
        );
    }
    let mut add = |status: &str, name: &str| {
        responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if takes_input {
        add("400", "Invalid");
    }
    // `security: [{}]` marks an operation that needs no authentication.
    let public = op.security.as_ref().is_some_and(|reqs| {
        reqs.iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
    });
    if !public {
        add("401", "Unauthenticated");
    }
    if method != HttpMethod::Get {
        add("403", "Forbidden");
    }
    if has_id {
        add("404", "NotFound");
    }
    op.responses = responses;
}

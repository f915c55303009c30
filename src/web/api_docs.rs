//! The API reference: the OpenAPI description of `/api/v1` rendered by Swagger UI, which is
//! vendored from npm and embedded like every other asset.

use askama::Template;
use askama_web::WebTemplate;

use super::page::{Layout, Nav, SignedIn};
use crate::error::AppResult;
use crate::extract::RequestUrl;

/// `/api/docs`
#[derive(Template, WebTemplate)]
#[template(path = "api/docs.html")]
pub struct ApiDocsPage {
    /// Base layout.
    pub layout: Layout,
    /// `scheme://host` of this server as the browser reached it, for the curl example.
    pub origin: String,
}

/// `GET /api/docs`
pub async fn get_api_docs(
    signed_in: SignedIn,
    RequestUrl(url): RequestUrl,
) -> AppResult<ApiDocsPage> {
    let origin = url
        .find("/api/docs")
        .map_or(String::new(), |i| url[..i].to_string());
    Ok(ApiDocsPage {
        layout: signed_in.layout(Nav::Api).await?,
        origin,
    })
}

//! The jobs page.

use askama::Template;
use askama_web::WebTemplate;

use super::{Layout, Nav, SignedIn};
use crate::error::AppResult;

/// `/jobs`
#[derive(Template, WebTemplate)]
#[template(path = "jobs/index.html")]
pub struct JobsPage {
    /// Base layout.
    pub layout: Layout,
}

/// `GET /jobs`
pub async fn get_jobs(signed_in: SignedIn) -> AppResult<JobsPage> {
    Ok(JobsPage {
        layout: signed_in.layout(Nav::Jobs).await?,
    })
}

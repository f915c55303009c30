//! The dashboard.

use askama::Template;
use askama_web::WebTemplate;

use super::{Layout, Nav, SignedIn};
use crate::error::AppResult;

/// `/`
#[derive(Template, WebTemplate)]
#[template(path = "dashboard/index.html")]
pub struct DashboardPage {
    /// Base layout.
    pub layout: Layout,
}

/// `GET /`
pub async fn get_dashboard(signed_in: SignedIn) -> AppResult<DashboardPage> {
    Ok(DashboardPage {
        layout: signed_in.layout(Nav::Dashboard).await?,
    })
}

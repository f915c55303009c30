//! The dashboard: every region with its live badge.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::{Layout, Nav, SignedIn};
use crate::app::AppState;
use crate::devices::{self, DeviceFilter, RegionFilter};
use crate::error::AppResult;
use crate::regions::{self, Region};

/// `/`
#[derive(Template, WebTemplate)]
#[template(path = "dashboard/index.html")]
pub struct DashboardPage {
    /// Base layout.
    pub layout: Layout,
    /// Every region in scope.
    pub regions: Vec<Region>,
    /// Devices in scope.
    pub devices: i64,
    /// Devices without a region.
    pub unassigned: i64,
}

/// `GET /`
pub async fn get_dashboard(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> AppResult<DashboardPage> {
    let scope = signed_in.user.scope();
    let mut conn = state.pool.acquire().await?;
    let regions = regions::all(&mut conn, &scope, regions::Counts::With).await?;
    let devices = devices::count(&mut conn, &scope, &DeviceFilter::default()).await?;
    let unassigned = devices::count(
        &mut conn,
        &scope,
        &DeviceFilter {
            region: Some(RegionFilter::Unassigned),
            ..Default::default()
        },
    )
    .await?;
    Ok(DashboardPage {
        layout: signed_in.layout(Nav::Dashboard).await?,
        regions,
        devices,
        unassigned,
    })
}

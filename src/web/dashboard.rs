//! The dashboard: every region with its live badge.

use askama::Template;
use askama_web::WebTemplate;

use super::filters;
use super::page::{Layout, Nav, SignedIn};
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
    /// The region cards (refreshed every few seconds).
    pub cards: RegionCardsPartial,
    /// No customer exists yet: a fresh installation, whose first step is to create one.
    pub first_run: bool,
}

/// One card per region with its badge, queue depth and live workers.
#[derive(Template, WebTemplate)]
#[template(path = "dashboard/_cards.html")]
pub struct RegionCardsPartial {
    /// Regions.
    pub regions: Vec<Region>,
    /// Load per queue.
    pub stats: std::collections::HashMap<String, crate::fleet::QueueStats>,
}

impl RegionCardsPartial {
    /// The load of a region's queue.
    pub fn stats_of(&self, region: &Region) -> crate::fleet::QueueStats {
        self.stats
            .get(&region.queue_name())
            .copied()
            .unwrap_or_default()
    }
}

/// `GET /`
pub async fn get_dashboard(
    signed_in: SignedIn,
    query: crate::extract::QueryPairs,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    let regions = regions::all(&mut conn, &scope, regions::Counts::With).await?;
    let cards = RegionCardsPartial {
        stats: crate::fleet::queue_stats(&mut conn).await?,
        regions: regions.clone(),
    };
    if query.get("cards").is_some() {
        return Ok(cards.into_response());
    }
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
    let first_run =
        signed_in.user.is_superuser && crate::customers::all(&mut conn).await?.is_empty();
    Ok(DashboardPage {
        layout: signed_in.layout(Nav::Dashboard).await?,
        regions,
        devices,
        unassigned,
        cards,
        first_run,
    }
    .into_response())
}

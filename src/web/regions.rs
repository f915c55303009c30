//! Region pages: list, create, edit, delete, details with a manual health form.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::Response;
use serde_json::Value;

use super::filters;
use super::forms::{FormPairs, answer, thousands};
use super::object_form::{FormFrame, FormValues, ObjectForm};
use super::page::{Layout, Nav, SignedIn};
use super::pager::{Pager, Paging};
use crate::auth::{AuthUser, CustomerRef, Role};
use crate::customers;
use crate::devices::{self, Device, DeviceFilter, RegionFilter};
use crate::error::{AppResult, FieldErrors};
use crate::extract::{Id, QueryPairs};
use crate::pagination::PageRequest;
use crate::regions::{self, Region, RegionInput};
use crate::state::AppState;
use crate::types::HealthStatus;
use crate::usecases::inventory;

/// The inside of a badge: what the SSE events carry. The outer element, which listens for
/// the events, stays in place, so no update can arrive while nothing listens.
#[derive(Template, WebTemplate, Debug, Clone)]
#[template(path = "regions/_health_status.html")]
pub struct HealthStatusPartial {
    /// Status.
    pub status: HealthStatus,
    /// Shown as a tooltip.
    pub message: String,
    /// Says "no workers yet" instead of the status (never, for a change: a change is a
    /// measured or a set health).
    pub awaiting: bool,
}

/// `/regions`
#[derive(Template, WebTemplate)]
#[template(path = "regions/index.html")]
pub struct RegionsPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's regions.
    pub regions: Vec<Region>,
    /// Pagination.
    pub pager: Pager,
    /// May create, edit and delete.
    pub can_manage: bool,
    /// Show the customer column (user sees several customers).
    pub show_customer: bool,
    /// Customer names by id.
    pub customers: Vec<CustomerRef>,
}

impl RegionsPage {
    /// Name of a customer id.
    pub fn customer_name(&self, id: &i64) -> String {
        self.customers
            .iter()
            .find(|c| c.id == *id)
            .map_or_else(|| format!("#{id}"), |c| c.name.clone())
    }
}

/// `/regions/new` and `/regions/{id}/edit`
#[derive(Template, WebTemplate)]
#[template(path = "regions/form.html")]
pub struct RegionFormPage {
    /// Base layout.
    pub layout: Layout,
    /// The region edited, its fields and their errors.
    pub form: FormFrame<Region, RegionValues>,
}

/// Form values as strings, to refill the form after an error.
#[derive(Debug, Clone)]
pub struct RegionValues {
    /// Customer id.
    pub customer: String,
    /// Name.
    pub name: String,
    /// Identifier.
    pub identifier: String,
    /// Priority.
    pub priority: String,
    /// Health check interval.
    pub health_check_interval_seconds: String,
    /// Enabled.
    pub enabled: bool,
    /// API endpoint.
    pub api_endpoint: String,
    /// Worker pool config (JSON text).
    pub worker_pool_config: String,
    /// Description.
    pub description: String,
}

impl FormValues<Region> for RegionValues {
    fn blank() -> Self {
        Self {
            customer: String::new(),
            name: String::new(),
            identifier: String::new(),
            priority: "100".into(),
            health_check_interval_seconds: "60".into(),
            enabled: true,
            api_endpoint: String::new(),
            worker_pool_config: "{}".into(),
            description: String::new(),
        }
    }

    fn stored(r: &Region) -> Self {
        Self {
            customer: r.customer_id.to_string(),
            name: r.name.clone(),
            identifier: r.identifier.clone(),
            priority: r.priority.to_string(),
            health_check_interval_seconds: r.health_check_interval_seconds.to_string(),
            enabled: r.enabled,
            api_endpoint: r.api_endpoint.clone(),
            worker_pool_config: serde_json::to_string_pretty(&r.worker_pool_config.0)
                .unwrap_or_else(|_| "{}".into()),
            description: r.description.clone(),
        }
    }

    fn submitted(form: &FormPairs) -> Self {
        Self {
            customer: form.text("customer"),
            name: form.text("name"),
            identifier: form.text("identifier"),
            priority: form.text("priority"),
            health_check_interval_seconds: form.text("health_check_interval_seconds"),
            enabled: form.checked("enabled"),
            api_endpoint: form.text("api_endpoint"),
            worker_pool_config: form.text("worker_pool_config"),
            description: form.text("description"),
        }
    }
}

/// `/regions/{id}`
#[derive(Template, WebTemplate)]
#[template(path = "regions/show.html")]
pub struct RegionPage {
    /// Base layout.
    pub layout: Layout,
    /// The region.
    pub region: Region,
    /// Its devices (this page).
    pub devices: Vec<Device>,
    /// Device pagination.
    pub pager: Pager,
    /// The device search box's value.
    pub q: String,
    /// May set health and edit.
    pub can_manage: bool,
    /// Errors of the health form.
    pub errors: FieldErrors,
    /// Live workers on the region's queue.
    pub workers: Vec<crate::fleet::WorkerInfo>,
    /// The queue's load.
    pub stats: crate::fleet::QueueStats,
    /// Latest health changes.
    pub events: Vec<crate::regions::HealthEvent>,
    /// Its latest jobs (those whose region it is).
    pub jobs: Vec<crate::jobs::Job>,
}

/// `GET /regions`
pub async fn get_regions(
    signed_in: SignedIn,
    Paging { page, size }: Paging,
) -> AppResult<RegionsPage> {
    let mut conn = signed_in.pool().acquire().await?;
    let (regions, count) = regions::list(
        &mut conn,
        &signed_in.user.scope(),
        page,
        regions::Counts::With,
    )
    .await?;
    let customers = customers::all(&mut conn).await?;
    let url = format!(
        "/regions?{}",
        size.map(|s| format!("page_size={s}")).unwrap_or_default()
    );
    Ok(RegionsPage {
        layout: signed_in.layout(Nav::Regions).await?,
        pager: Pager::new(page, count, &url, regions.len()),
        regions,
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
        show_customer: signed_in.user.is_superuser || signed_in.user.customers.len() > 1,
        customers,
    })
}

impl ObjectForm for Region {
    const LIST: &'static str = "/regions";
    const NAV: Nav = Nav::Regions;
    type Input = RegionInput;
    type Values = RegionValues;
    type Page = RegionFormPage;

    fn read(form: &FormPairs, errors: &mut FieldErrors) -> RegionInput {
        let worker_pool_config = form.get("worker_pool_config").and_then(|raw| {
            if raw.trim().is_empty() {
                return Some(Value::Object(Default::default()));
            }
            serde_json::from_str::<Value>(raw)
                .map_err(|e| errors.add("worker_pool_config", format!("Not valid JSON: {e}.")))
                .ok()
        });
        RegionInput {
            customer: form.integer("customer", errors),
            name: form.string("name"),
            identifier: form.string("identifier"),
            api_endpoint: form.string("api_endpoint"),
            worker_pool_config,
            health_check_interval_seconds: form.integer("health_check_interval_seconds", errors),
            priority: form.integer("priority", errors),
            enabled: Some(form.checked("enabled")),
            description: form.string("description"),
        }
    }

    async fn page(
        signed_in: &SignedIn,
        form: FormFrame<Region, RegionValues>,
    ) -> AppResult<RegionFormPage> {
        let layout = signed_in.layout(Nav::Regions).await?;
        Ok(RegionFormPage { layout, form })
    }

    async fn save(
        state: &AppState,
        user: &AuthUser,
        id: Option<i64>,
        input: &RegionInput,
        read: FieldErrors,
    ) -> AppResult<Region> {
        match id {
            None => inventory::create_region(&state.pool, user, input, read).await,
            Some(id) => inventory::update_region(&state.pool, user, id, input, true, read).await,
        }
    }

    fn saved(&self, created: bool) -> (String, String) {
        if created {
            let message = format!(
                "Region {} created. Its queue is {}.",
                self.name,
                self.queue_name()
            );
            (message, format!("/regions/{}", self.id))
        } else {
            let message = format!("Region {} saved.", self.name);
            (message, format!("/regions/{}", self.id))
        }
    }

    fn deleting(&self) -> (String, String, String) {
        let impact = match self.device_count {
            0 => "No device is assigned to it.".to_string(),
            n => format!(
                "{} will lose their region; their jobs will go to the default queue.",
                devices(n)
            ),
        };
        (self.name.clone(), format!("/regions/{}", self.id), impact)
    }

    async fn delete(state: &AppState, user: &AuthUser, id: i64) -> AppResult<String> {
        let r = inventory::delete_region(&state.pool, user, id).await?;
        let n = devices(r.device_count);
        Ok(format!(
            "Region {} deleted; {n} no longer have a region.",
            r.name
        ))
    }
}

/// `GET /regions/{id}`
pub async fn get_region(
    signed_in: SignedIn,
    Id(id): Id,
    query: QueryPairs,
) -> AppResult<RegionPage> {
    region_page(&signed_in, id, &query, FieldErrors::new()).await
}

async fn region_page(
    signed_in: &SignedIn,
    id: i64,
    query: &QueryPairs,
    errors: FieldErrors,
) -> AppResult<RegionPage> {
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    let region = regions::get(&mut conn, &scope, id).await?;
    let mut ignored = FieldErrors::new();
    let page = PageRequest::parse(query.get("page"), None, &mut ignored);
    let q = query.get("q").unwrap_or("").trim().to_string();
    let filter = DeviceFilter {
        region: Some(RegionFilter::Id(region.id)),
        q: (!q.is_empty()).then(|| q.clone()),
        ..Default::default()
    };
    let (devices, total) = devices::list(&mut conn, &scope, &filter, "hostname", page).await?;
    let url = if q.is_empty() {
        format!("/regions/{id}")
    } else {
        format!(
            "/regions/{id}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &q)
                .finish()
        )
    };
    let workers = crate::fleet::workers_on(&mut conn, &region.queue_name()).await?;
    let stats = crate::fleet::queue_stats(&mut conn)
        .await?
        .remove(&region.queue_name())
        .unwrap_or_default();
    let events = crate::regions::events(&mut conn, region.id, 20).await?;
    let recent = crate::jobs::JobFilter {
        region: Some(region.id),
        ..Default::default()
    };
    let ten = PageRequest {
        page: 1,
        page_size: 10,
    };
    let (jobs, _) = crate::jobs::list(&mut conn, &scope, &recent, ten).await?;
    Ok(RegionPage {
        jobs,
        workers,
        stats,
        events,
        layout: signed_in.layout(Nav::Regions).await?,
        pager: Pager::of(page, total, &url, devices.len()),
        devices,
        q,
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
        region,
        errors,
    })
}

/// `POST /regions/{id}/health`: the manual health form.
pub async fn post_region_health(
    signed_in: SignedIn,
    Id(id): Id,
    form: FormPairs,
) -> AppResult<Response> {
    let (status, message) = (form.get("health_status"), form.get("message"));
    let user = &signed_in.user;
    let result = inventory::set_region_health(signed_in.pool(), user, id, status, message).await;
    let done = |r: &Region| {
        let message = format!("{} is now {}.", r.name, r.health_status);
        (message, format!("/regions/{id}"))
    };
    answer(&signed_in.session, result, done, async |errors| {
        region_page(&signed_in, id, &QueryPairs::default(), errors).await
    })
    .await
}

/// "1 device", "1,234 devices".
fn devices(n: i64) -> String {
    format!("{} device{}", thousands(&n), if n == 1 { "" } else { "s" })
}

impl RegionPage {
    /// The health statuses, for the manual form.
    pub fn statuses(&self) -> [HealthStatus; 3] {
        HealthStatus::ALL
    }
}

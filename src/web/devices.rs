//! Device pages: the filterable list with bulk region assignment, create, edit, delete.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::filters;
use super::flash::{self, Level};
use super::forms::{FormPairs, thousands};
use super::object_form::{FormFrame, FormValues, ObjectForm};
use super::page::{Layout, Nav, SignedIn};
use super::pager::{Pager, Paging, list_url};
use crate::auth::{AuthUser, Role};
use crate::credentials::{self, Credential};
use crate::devices::{
    self, BulkTarget, CredentialFilter, Device, DeviceFilter, DeviceInput, RegionFilter,
};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::extract::{Id, Params, QueryPairs};
use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest};
use crate::params::{DeviceParams, Reading};
use crate::regions::{self, Region};
use crate::state::AppState;
use crate::types::Reachability;
use crate::usecases::inventory;

/// A sortable column header.
#[derive(Debug, Clone)]
pub struct SortLink {
    /// Header text.
    pub label: &'static str,
    /// Where clicking leads.
    pub href: String,
    /// `ascending`/`descending` when the list is sorted by this column (aria-sort).
    pub aria_sort: Option<&'static str>,
}

/// `/devices`
#[derive(Template, WebTemplate)]
#[template(path = "devices/index.html")]
pub struct DevicesPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's devices.
    pub devices: Vec<Device>,
    /// Pagination.
    pub pager: Pager,
    /// The active filters.
    pub filter: DeviceFilter,
    /// Regions for the filter and the bulk select.
    pub regions: Vec<Region>,
    /// Known sites, roles and vendors, for the filter's suggestions.
    pub sites: Vec<String>,
    /// Known roles.
    pub roles: Vec<String>,
    /// Known vendors.
    pub vendors: Vec<String>,
    /// Credentials, for the credential filter.
    pub credentials: Vec<Credential>,
    /// Column headers.
    pub columns: Vec<SortLink>,
    /// The filters as hidden inputs for the bulk form.
    pub filter_pairs: Vec<(&'static str, String)>,
    /// The current list URL (to come back to after a bulk action).
    pub current_url: String,
    /// The CSV export of every device the filter matches, in the same order.
    pub export_url: String,
    /// May assign regions.
    pub can_assign: bool,
    /// May create devices.
    pub can_manage: bool,
    /// Rows per page.
    pub page_size: i64,
    /// The sort order, kept when the filter form is sent (`hostname` is the default).
    pub sort: String,
}

/// The page sizes the device list offers.
const PAGE_SIZES: [i64; 5] = [25, DEFAULT_PAGE_SIZE, 100, 250, 500];

impl DevicesPage {
    /// The page sizes to offer: the usual ones, and the current one when a URL asked for
    /// another.
    pub fn page_sizes(&self) -> Vec<i64> {
        let mut sizes = PAGE_SIZES.to_vec();
        if !sizes.contains(&self.page_size) {
            sizes.push(self.page_size);
            sizes.sort_unstable();
        }
        sizes
    }

    /// A page size's value in the form: empty for the default, which keeps URLs clean.
    pub fn page_size_value(&self, size: &i64) -> String {
        if *size == DEFAULT_PAGE_SIZE {
            String::new()
        } else {
            size.to_string()
        }
    }

    /// Whether the region filter is `id`.
    pub fn region_selected(&self, id: &i64) -> bool {
        self.filter.region == Some(RegionFilter::Id(*id))
    }

    /// Whether the region filter is "no region".
    pub fn unassigned_selected(&self) -> bool {
        self.filter.region == Some(RegionFilter::Unassigned)
    }

    /// Whether the enabled filter is `value`.
    pub fn enabled_selected(&self, value: bool) -> bool {
        self.filter.enabled == Some(value)
    }

    /// Whether the reachability filter is `r`.
    pub fn reachability_selected(&self, r: &Reachability) -> bool {
        self.filter.reachability == Some(*r)
    }

    /// Whether the credential filter is the credential `id`.
    pub fn credential_selected(&self, id: &i64) -> bool {
        self.filter.credential == Some(CredentialFilter::Id(*id))
    }

    /// Whether the credential filter is "no credential".
    pub fn no_credential_selected(&self) -> bool {
        self.filter.credential == Some(CredentialFilter::Missing)
    }

    /// Every reachability status, for the filter's options.
    pub fn reachabilities(&self) -> [Reachability; 3] {
        Reachability::ALL
    }

    /// A multi-valued filter's values, as its box shows them (`s01, s02`).
    pub fn joined(&self, values: &[String]) -> String {
        values.join(", ")
    }

    /// A text filter's value, or "".
    pub fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }
}

/// The bulk assignment's confirmation.
#[derive(Template, WebTemplate)]
#[template(path = "devices/bulk_confirm.html")]
pub struct BulkConfirmPage {
    /// Base layout.
    pub layout: Layout,
    /// Devices that will be assigned.
    pub count: i64,
    /// Target region's name, or `None` for "no region".
    pub region_name: Option<String>,
    /// The submitted fields, to post again with `confirmed=1`.
    pub fields: Vec<(String, String)>,
    /// Where to go back to.
    pub back: String,
}

/// The bulk edit's form: which fields to set on the devices chosen on the list.
#[derive(Template, WebTemplate)]
#[template(path = "devices/bulk_edit.html")]
pub struct BulkEditPage {
    /// Base layout.
    pub layout: Layout,
    /// Devices the edit applies to.
    pub count: i64,
    /// The list's selection (ids, "all matching", its filter) and `back`, posted on.
    pub target_fields: Vec<(String, String)>,
    /// The edit's fields as typed, to show the form again.
    pub values: FormPairs,
    /// Why the last attempt was refused.
    pub errors: FieldErrors,
    /// Regions to choose from.
    pub regions: Vec<Region>,
    /// Credentials to choose from.
    pub credentials: Vec<Credential>,
    /// Whether the user may change more than the region (admin).
    pub can_manage: bool,
    /// Where to go back to.
    pub back: String,
}

/// The bulk edit's confirmation: the count and the first devices' old → new values.
#[derive(Template, WebTemplate)]
#[template(path = "devices/bulk_edit_confirm.html")]
pub struct BulkEditConfirmPage {
    /// Base layout.
    pub layout: Layout,
    /// What the edit would do.
    pub plan: inventory::BulkPlan,
    /// Whether more devices change than the preview lists.
    pub more: bool,
    /// The submitted fields, to post again with `step=apply`.
    pub fields: Vec<(String, String)>,
    /// Where to go back to.
    pub back: String,
}

/// `/devices/new` and `/devices/{id}/edit`
#[derive(Template, WebTemplate)]
#[template(path = "devices/form.html")]
pub struct DeviceFormPage {
    /// Base layout.
    pub layout: Layout,
    /// The device edited, its fields and their errors.
    pub form: FormFrame<Device, DeviceValues>,
    /// Regions to choose from.
    pub regions: Vec<Region>,
    /// Credentials to choose from.
    pub credentials: Vec<Credential>,
}

/// Device form values as strings.
#[derive(Debug, Clone, Default)]
pub struct DeviceValues {
    /// Customer id.
    pub customer: String,
    /// Hostname.
    pub hostname: String,
    /// Address.
    pub mgmt_ip: String,
    /// Port.
    pub port: String,
    /// Vendor.
    pub vendor: String,
    /// Platform.
    pub platform: String,
    /// Role.
    pub role: String,
    /// Site.
    pub site: String,
    /// Comma-separated tags.
    pub tags: String,
    /// Credential id or "".
    pub credential: String,
    /// Region id or "".
    pub region: String,
    /// Enabled.
    pub enabled: bool,
}

impl FormValues<Device> for DeviceValues {
    fn blank() -> Self {
        Self {
            port: "22".into(),
            enabled: true,
            ..Default::default()
        }
    }

    fn stored(d: &Device) -> Self {
        Self {
            customer: d.customer_id.to_string(),
            hostname: d.hostname.clone(),
            mgmt_ip: d.mgmt_ip.to_string(),
            port: d.port.to_string(),
            vendor: d.vendor.clone(),
            platform: d.platform.clone(),
            role: d.role.clone(),
            site: d.site.clone(),
            tags: d.tags.join(", "),
            credential: d.credential_id.map(|i| i.to_string()).unwrap_or_default(),
            region: d.region_id.map(|i| i.to_string()).unwrap_or_default(),
            enabled: d.enabled,
        }
    }

    fn submitted(form: &FormPairs) -> Self {
        Self {
            customer: form.text("customer"),
            hostname: form.text("hostname"),
            mgmt_ip: form.text("mgmt_ip"),
            port: form.text("port"),
            vendor: form.text("vendor"),
            platform: form.text("platform"),
            role: form.text("role"),
            site: form.text("site"),
            tags: form.text("tags"),
            credential: form.text("credential"),
            region: form.text("region"),
            enabled: form.checked("enabled"),
        }
    }
}

/// `/devices/{id}`
#[derive(Template, WebTemplate)]
#[template(path = "devices/show.html")]
pub struct DevicePage {
    /// Base layout.
    pub layout: Layout,
    /// The device.
    pub device: Device,
    /// Its credential's name.
    pub credential_name: Option<String>,
    /// May edit.
    pub can_manage: bool,
    /// SSH host key trust.
    pub host_key: crate::snapshots::HostKey,
    /// Configuration snapshots, newest first.
    pub snapshots: Vec<crate::snapshots::Snapshot>,
    /// Diff between the two snapshots compared (older → newer), with their ids.
    pub diff: Option<crate::snapshots::ConfigDiff>,
    /// The last jobs that ran on it, newest first.
    pub history: Vec<crate::jobs::DeviceJob>,
}

const COLUMNS: &[(&str, &str)] = &[
    ("Hostname", "hostname"),
    ("Address", "mgmt_ip"),
    ("Site", "site"),
    ("Role", "role"),
    ("Vendor", "vendor"),
    ("Region", "region"),
];

fn devices_url(filter: &DeviceFilter, sort: &str, page_size: Option<i64>) -> String {
    list_of("/devices", filter, sort, page_size)
}

/// `path` with the list's filter, its sort unless the default, and the page size if given.
fn list_of(path: &str, filter: &DeviceFilter, sort: &str, page_size: Option<i64>) -> String {
    let mut pairs = filter.to_pairs();
    if sort != "hostname" {
        pairs.push(("sort", sort.to_string()));
    }
    if let Some(size) = page_size {
        pairs.push(("page_size", size.to_string()));
    }
    list_url(path, pairs)
}

/// `GET /devices`
pub async fn get_devices(
    signed_in: SignedIn,
    Paging {
        page,
        size: size_given,
    }: Paging,
    Params(params): Params<DeviceParams>,
) -> AppResult<Response> {
    let (filter, sort) = params.filter(Reading::Forgiving)?;
    let sort = sort.as_str();
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    let (rows, total) = devices::list(&mut conn, &scope, &filter, sort, page).await?;
    let regions = regions::all(&mut conn, &scope, regions::Counts::Without).await?;
    let sites = devices::distinct_values(&mut conn, &scope, "site").await?;
    let roles = devices::distinct_values(&mut conn, &scope, "role").await?;
    let vendors = devices::distinct_values(&mut conn, &scope, "vendor").await?;
    let all = PageRequest {
        page: 1,
        page_size: MAX_PAGE_SIZE,
    };
    let (credentials, _) = credentials::list(&mut conn, &scope, all).await?;
    let size = (!size_given.as_deref().unwrap_or("").is_empty()).then_some(page.page_size);
    let base = devices_url(&filter, sort, size);
    let columns = COLUMNS
        .iter()
        .map(|(label, key)| {
            let current = sort.trim_start_matches('-') == *key;
            let descending = sort.starts_with('-');
            let next = if current && !descending {
                format!("-{key}")
            } else {
                key.to_string()
            };
            SortLink {
                label,
                href: devices_url(&filter, &next, size),
                aria_sort: current.then_some(if descending {
                    "descending"
                } else {
                    "ascending"
                }),
            }
        })
        .collect();
    let current_url = if page.page > 1 {
        crate::pagination::with_page(&base, page.page)
    } else {
        base.clone()
    };
    let export_url = list_of("/devices.csv", &filter, sort, None);
    Ok(DevicesPage {
        layout: signed_in.layout(Nav::Devices).await?,
        pager: Pager::of(page, total, &base, rows.len()),
        devices: rows,
        filter_pairs: filter.to_pairs(),
        filter,
        regions,
        sites,
        roles,
        vendors,
        credentials,
        columns,
        current_url,
        export_url,
        can_assign: signed_in.user.require(Role::Operator).is_ok(),
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
        page_size: page.page_size,
        sort: sort.to_string(),
    }
    .into_response())
}

/// `GET /devices.csv`: every device the list's filter matches (all pages), in its order, as
/// a streamed CSV download.
pub async fn get_devices_csv(
    signed_in: SignedIn,
    Params(params): Params<DeviceParams>,
) -> AppResult<Response> {
    let (filter, sort) = params.filter(Reading::Forgiving)?;
    let export = inventory::export_devices(signed_in.pool(), &signed_in.user, filter, sort).await?;
    Ok(crate::extract::csv_export(export))
}

/// `POST /devices/bulk-assign`: the bulk form. Without `confirmed`, shows how many devices
/// will change and asks; with it, assigns them in one statement.
pub async fn post_bulk_assign(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    let back = back_to_list(&form);
    let (target, region_id) = match bulk_request(&form) {
        Ok(parsed) => parsed,
        Err(errors) => return refuse_to_list(&signed_in, errors, &back).await,
    };

    if !form.checked("confirmed") {
        let user = &signed_in.user;
        let (count, region) =
            inventory::preview_bulk_assign(signed_in.pool(), user, &target, region_id).await?;
        let mut fields: Vec<(String, String)> = form
            .0
            .iter()
            .filter(|(k, _)| k != "csrf_token" && k != "confirmed")
            .cloned()
            .collect();
        fields.push(("back".into(), back.clone()));
        return Ok(BulkConfirmPage {
            layout: signed_in.layout(Nav::Devices).await?,
            count,
            region_name: region.map(|r| r.name),
            fields,
            back,
        }
        .into_response());
    }

    let (updated, region) =
        inventory::bulk_assign(signed_in.pool(), &signed_in.user, &target, region_id).await?;
    let n = thousands(&(updated as i64));
    let message = match (&region, updated) {
        (Some(r), 1) => format!("1 device moved to {}.", r.name),
        (Some(r), _) => format!("{n} devices moved to {}.", r.name),
        (None, 1) => "1 device no longer has a region.".to_string(),
        (None, _) => format!("{n} devices no longer have a region."),
    };
    flash::push(&signed_in.session, Level::Success, message).await?;
    Ok(Redirect::to(&back).into_response())
}

/// Fields of the bulk edit's own form (the rest of a submission is the list's selection).
const EDIT_FIELDS: &[&str] = &[
    "credential",
    "site",
    "role",
    "vendor",
    "platform",
    "enabled",
    "tags_add",
    "tags_remove",
    "region",
];

/// Reads the bulk edit's fields; "keep" (or blank text) leaves a field as it is.
fn read_edit(form: &FormPairs, errors: &mut FieldErrors) -> devices::BulkEditInput {
    let choice = |key: &str, errors: &mut FieldErrors| match form.get(key) {
        None | Some("keep") => None,
        Some(_) => form.optional_id(key, errors),
    };
    let tags = |key: &str| {
        form.get(key)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').map(str::to_string).collect())
    };
    devices::BulkEditInput {
        credential: choice("credential", errors),
        site: form.string("site"),
        role: form.string("role"),
        vendor: form.string("vendor"),
        platform: form.string("platform"),
        enabled: match form.get("enabled") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        },
        tags_add: tags("tags_add"),
        tags_remove: tags("tags_remove"),
        region: choice("region", errors),
    }
}

/// `POST /devices/bulk-edit`, from the list's bulk bar: the edit form for the checked
/// devices (or all matching), then (`step=preview`) the confirmation with the first
/// devices' old and new values, then (`step=apply`) the change, in one transaction.
pub async fn post_bulk_edit(signed_in: SignedIn, form: FormPairs) -> AppResult<Response> {
    let back = back_to_list(&form);
    let target = match bulk_target(&form) {
        Ok(target) => target,
        Err(errors) => return refuse_to_list(&signed_in, errors, &back).await,
    };
    let user = &signed_in.user;
    let target_fields: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(k, _)| {
            !EDIT_FIELDS.contains(&k.as_str())
                && !matches!(k.as_str(), "csrf_token" | "step" | "back")
        })
        .cloned()
        .collect();
    let step = form.get("step").unwrap_or("");
    let mut errors = FieldErrors::new();
    let input = read_edit(&form, &mut errors);
    let edit = match step {
        "preview" | "apply" => match input.validate() {
            Ok(edit) if errors.is_empty() => Some(edit),
            Ok(_) => None,
            Err(e) => {
                errors.extend(e);
                None
            }
        },
        _ => None,
    };
    let planned = match &edit {
        Some(edit) if step == "preview" => {
            Some(inventory::preview_bulk_edit(signed_in.pool(), user, &target, edit).await)
        }
        _ => None,
    };
    match (edit, planned) {
        (Some(_), Some(Ok(plan))) => {
            let fields = form
                .0
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "csrf_token" | "step" | "back"))
                .cloned()
                .chain([("back".to_string(), back.clone())])
                .collect();
            return Ok(BulkEditConfirmPage {
                layout: signed_in.layout(Nav::Devices).await?,
                more: plan.count > plan.preview.len() as i64,
                plan,
                fields,
                back,
            }
            .into_response());
        }
        (Some(edit), None) => {
            match inventory::bulk_edit(signed_in.pool(), user, &target, &edit).await {
                Ok(updated) => {
                    let n = thousands(&(updated as i64));
                    let message = match updated {
                        1 => "1 device changed.".to_string(),
                        _ => format!("{n} devices changed."),
                    };
                    flash::push(&signed_in.session, Level::Success, message).await?;
                    return Ok(Redirect::to(&back).into_response());
                }
                Err(AppError::Validation(e)) => errors.extend(e),
                Err(e) => return Err(e),
            }
        }
        (_, Some(Err(AppError::Validation(e)))) => errors.extend(e),
        (_, Some(Err(e))) => return Err(e),
        (None, _) => {}
    }
    // The form, first or again with its errors.
    let (count, _) = inventory::preview_bulk_assign(signed_in.pool(), user, &target, None).await?;
    let (regions, credentials) = form_choices(&signed_in).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = BulkEditPage {
        layout: signed_in.layout(Nav::Devices).await?,
        count,
        target_fields,
        values: form,
        errors,
        regions,
        credentials,
        can_manage: user.require(Role::Admin).is_ok(),
        back,
    };
    Ok((status, page).into_response())
}

/// Where a bulk form returns to: the list it came from, filters intact.
pub(super) fn back_to_list(form: &FormPairs) -> String {
    form.get("back")
        .map(|b| super::page::safe_next(Some(b)).to_string())
        .filter(|b| b.starts_with("/devices"))
        .unwrap_or_else(|| "/devices".into())
}

/// Back to the list, filters intact, with the reasons on top.
pub(super) async fn refuse_to_list(
    signed_in: &SignedIn,
    errors: FieldErrors,
    back: &str,
) -> AppResult<Response> {
    let message = errors
        .0
        .values()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    flash::push(&signed_in.session, Level::Error, message).await?;
    Ok(Redirect::to(back).into_response())
}

/// The device list's filter, carried by a form as `filter_<name>` hidden fields (so "all
/// matching" means the filter the list showed).
pub(super) fn list_filter(form: &FormPairs, errors: &mut FieldErrors) -> DeviceFilter {
    DeviceFilter::from_pairs(
        form.0
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("filter_").map(|k| (k, v.clone()))),
        errors,
    )
}

/// Reads a bulk form's selection: the checked ids, or every device of the list's filter.
pub(super) fn bulk_target(form: &FormPairs) -> Result<BulkTarget, FieldErrors> {
    let mut errors = FieldErrors::new();
    let target = if form.checked("all_matching") {
        BulkTarget::Matching(list_filter(form, &mut errors))
    } else {
        let mut ids = Vec::new();
        for raw in form.all("device_ids") {
            match raw.parse::<i64>() {
                Ok(id) => ids.push(id),
                Err(_) => errors.add("device_ids", "Invalid device id."),
            }
        }
        if ids.is_empty() {
            errors.add(
                "device_ids",
                "Check some devices, or “all matching” to apply to every device of the filter.",
            );
        }
        BulkTarget::Ids(ids)
    };
    if errors.is_empty() {
        Ok(target)
    } else {
        Err(errors)
    }
}

/// Reads the bulk form: which devices, and which region (`None` = no region).
fn bulk_request(form: &FormPairs) -> Result<(BulkTarget, Option<i64>), FieldErrors> {
    let mut errors = FieldErrors::new();
    let target = bulk_target(form);
    let region = form.optional_id("region", &mut errors);
    if region.is_none() && !errors.has("region") {
        errors.add("region", "Choose a region, or “no region”.");
    }
    match (target, region) {
        (Ok(target), Some(region)) if errors.is_empty() => Ok((target, region)),
        (target, _) => {
            if let Err(e) = target {
                errors.extend(e);
            }
            Err(errors)
        }
    }
}

async fn form_choices(signed_in: &SignedIn) -> AppResult<(Vec<Region>, Vec<Credential>)> {
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    let regions = regions::all(&mut conn, &scope, regions::Counts::Without).await?;
    let all = PageRequest {
        page: 1,
        page_size: MAX_PAGE_SIZE,
    };
    let (credentials, _) = credentials::list(&mut conn, &scope, all).await?;
    Ok((regions, credentials))
}

impl ObjectForm for Device {
    const LIST: &'static str = "/devices";
    const NAV: Nav = Nav::Devices;
    type Input = DeviceInput;
    type Values = DeviceValues;
    type Page = DeviceFormPage;

    fn read(form: &FormPairs, errors: &mut FieldErrors) -> DeviceInput {
        DeviceInput {
            customer: form.integer("customer", errors),
            hostname: form.string("hostname"),
            mgmt_ip: form.string("mgmt_ip"),
            port: form.integer("port", errors),
            vendor: form.string("vendor"),
            platform: form.string("platform"),
            role: form.string("role"),
            site: form.string("site"),
            tags: form.get("tags").map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            credential: form.optional_id("credential", errors),
            enabled: Some(form.checked("enabled")),
            region: form.optional_id("region", errors),
        }
    }

    async fn page(
        signed_in: &SignedIn,
        form: FormFrame<Device, DeviceValues>,
    ) -> AppResult<DeviceFormPage> {
        let (regions, credentials) = form_choices(signed_in).await?;
        Ok(DeviceFormPage {
            layout: signed_in.layout(Nav::Devices).await?,
            form,
            regions,
            credentials,
        })
    }

    async fn save(
        state: &AppState,
        user: &AuthUser,
        id: Option<i64>,
        input: &DeviceInput,
        read: FieldErrors,
    ) -> AppResult<Device> {
        match id {
            None => inventory::create_device(&state.pool, user, input, read).await,
            Some(id) => inventory::update_device(&state.pool, user, id, input, true, read).await,
        }
    }

    fn saved(&self, created: bool) -> (String, String) {
        let verb = if created { "created" } else { "saved" };
        let message = format!("Device {} {verb}.", self.hostname);
        (message, format!("/devices/{}", self.id))
    }

    fn deleting(&self) -> (String, String, String) {
        let impact = "Its job history stays; the device itself is removed.".to_string();
        (
            self.hostname.clone(),
            format!("/devices/{}", self.id),
            impact,
        )
    }

    async fn delete(state: &AppState, user: &AuthUser, id: i64) -> AppResult<String> {
        let device = inventory::delete_device(&state.pool, user, id).await?;
        Ok(format!("Device {} deleted.", device.hostname))
    }
}

/// `GET /devices/{id}`
pub async fn get_device(
    signed_in: SignedIn,
    Id(id): Id,
    query: QueryPairs,
) -> AppResult<DevicePage> {
    let scope = signed_in.user.scope();
    let mut conn = signed_in.pool().acquire().await?;
    let device = devices::get(&mut conn, &scope, id).await?;
    let credential_name = match device.credential_id {
        Some(cid) => Some(credentials::get(&mut conn, &scope, cid).await?.name),
        None => None,
    };
    let host_key = crate::snapshots::host_key(&mut conn, &scope, id).await?;
    let snapshots = crate::snapshots::list(&mut conn, &scope, id).await?;
    let history = crate::jobs::device_history(&mut conn, id, 10).await?;
    // Compare ?a=&b= when given, else the two newest snapshots.
    let pick = |key: &str| query.get(key).and_then(|v| v.parse::<i64>().ok());
    let pair = match (pick("a"), pick("b")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ if snapshots.len() >= 2 => Some((snapshots[1].id, snapshots[0].id)),
        _ => None,
    };
    let diff = pair.and_then(|(a, b)| {
        let old = snapshots.iter().find(|s| s.id == a)?;
        let new = snapshots.iter().find(|s| s.id == b)?;
        Some(crate::snapshots::ConfigDiff {
            from: a,
            to: b,
            lines: crate::snapshots::diff(&old.config_text, &new.config_text),
        })
    });
    Ok(DevicePage {
        layout: signed_in.layout(Nav::Devices).await?,
        device,
        credential_name,
        can_manage: signed_in.user.require(Role::Admin).is_ok(),
        host_key,
        snapshots,
        diff,
        history,
    })
}

/// `POST /devices/{id}/accept-host-key`
pub async fn post_accept_host_key(signed_in: SignedIn, Id(id): Id) -> AppResult<Redirect> {
    let key = inventory::accept_host_key(signed_in.pool(), &signed_in.user, id).await?;
    let message = match key.ssh_host_key {
        Some(k) => format!("Host key {k} is now trusted."),
        None => "The next connection will trust the key the device presents.".to_string(),
    };
    flash::push(&signed_in.session, Level::Success, message).await?;
    Ok(Redirect::to(&format!("/devices/{id}")))
}

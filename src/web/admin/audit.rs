//! `/audit`: the audit trail, filtered.

use askama::Template;
use askama_web::WebTemplate;

use crate::audit::{Entry, ObjectType};
use crate::error::AppResult;
use crate::extract::Params;
use crate::params::{AuditParams, Reading};
use crate::usecases::admin;
use crate::web::filters;
use crate::web::page::{Layout, Nav, SignedIn};
use crate::web::pager::{Pager, Paging, list_url};

/// `/audit`
#[derive(Template, WebTemplate)]
#[template(path = "audit/index.html")]
pub struct AuditPage {
    /// Base layout.
    pub layout: Layout,
    /// This page's rows.
    pub entries: Vec<Entry>,
    /// Pagination.
    pub pager: Pager,
    /// The filters, as given.
    pub params: AuditParams,
}

impl AuditPage {
    /// The object types, for the filter.
    pub fn object_types(&self) -> [ObjectType; 7] {
        ObjectType::ALL
    }

    /// A filter's value, or "".
    pub fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }

    /// Where an object's page is, if it has one.
    pub fn link(&self, e: &Entry) -> Option<String> {
        let id = e.object_id?;
        let base = match e.object_type {
            ObjectType::Region => "/regions",
            ObjectType::Device => "/devices",
            ObjectType::Job => "/jobs",
            ObjectType::Customer => "/customers",
            ObjectType::User => "/users",
            ObjectType::Credential | ObjectType::Token => return None,
        };
        Some(format!("{base}/{id}"))
    }
}

/// `GET /audit`
pub async fn get_audit(
    signed_in: SignedIn,
    Paging { page, .. }: Paging,
    Params(params): Params<AuditParams>,
) -> AppResult<AuditPage> {
    let filter = params.filter(Reading::Forgiving)?;
    let (entries, count) =
        admin::audit_log(signed_in.pool(), &signed_in.user, &filter, page).await?;
    let base = list_url("/audit", params.to_pairs());
    Ok(AuditPage {
        layout: signed_in.layout(Nav::Audit).await?,
        pager: Pager::new(page, count, &base, entries.len()),
        entries,
        params,
    })
}

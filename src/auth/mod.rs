//! Who is asking and what they may do: users, roles, customers they belong to, API tokens,
//! browser sessions, CSRF protection and sign-in throttling.

pub mod accounts;
pub mod cache;
pub mod csrf;
pub mod middleware;
pub mod password;
pub mod session_store;
pub mod throttle;
pub mod tokens;
pub mod users;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;

use crate::error::{AppError, AppResult};
use crate::types::words;

/// Session key holding the signed-in user's id.
pub const SESSION_USER_KEY: &str = "user_id";

words! {
    /// What a user may do. Ordered: each role can do everything the one before it can.
    #[derive(PartialOrd, Ord, clap::ValueEnum)]
    pub enum Role {
        /// Reads everything of their customers.
        Viewer = "viewer",
        /// Also runs jobs and assigns devices to regions.
        Operator = "operator",
        /// Also manages regions, devices and credentials.
        Admin = "admin",
    }
}

/// How the current request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A browser session cookie: unsafe methods need the CSRF token.
    Session,
    /// An `Authorization: Bearer` API token.
    Token,
}

/// The signed-in user of the current request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Role within their customers.
    pub role: Role,
    /// Sees every customer.
    pub is_superuser: bool,
    /// Customers the user belongs to, by id and name, ordered by name.
    pub customers: Vec<CustomerRef>,
    /// How the request authenticated.
    #[serde(skip)]
    pub method: AuthMethod,
    /// The API token's name, when the request came with one (for the audit trail).
    #[serde(skip)]
    pub token: Option<String>,
    /// The client's address, when known (for the audit trail).
    #[serde(skip)]
    pub client_addr: Option<std::net::IpAddr>,
}

/// The customers a query may touch: `None` for all (superusers). Bind it as a
/// `bigint[]` and filter with `($n::bigint[] IS NULL OR customer_id = ANY($n))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(pub Option<Vec<i64>>);

impl Scope {
    /// Every customer (for the CLI, workers and tests).
    pub fn all() -> Self {
        Scope(None)
    }

    /// Whether a customer is inside this scope.
    pub fn contains(&self, customer_id: i64) -> bool {
        self.0.as_ref().is_none_or(|ids| ids.contains(&customer_id))
    }

    /// The value to bind.
    pub fn ids(&self) -> Option<&[i64]> {
        self.0.as_deref()
    }

    /// This scope narrowed to one customer inside it (a caller checks [`Scope::contains`]
    /// first): what a change that must stay within one customer works on.
    pub fn narrowed_to(&self, customer_id: i64) -> Scope {
        Scope(Some(vec![customer_id]))
    }
}

/// A customer's id and name.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CustomerRef {
    /// Customer id.
    pub id: i64,
    /// Customer name.
    pub name: String,
}

impl AuthUser {
    /// Fails with 403 unless the user's role is at least `role` (superusers always pass).
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.is_superuser || self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Customer ids whose objects the user sees; `None` means every customer (superuser).
    /// Every query of customer-owned rows filters on this.
    pub fn scope(&self) -> Scope {
        if self.is_superuser {
            Scope(None)
        } else {
            Scope(Some(self.customers.iter().map(|c| c.id).collect()))
        }
    }

    /// Whether the user may see objects of `customer_id`.
    pub fn can_see_customer(&self, customer_id: i64) -> bool {
        self.is_superuser || self.customers.iter().any(|c| c.id == customer_id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthUser>()
            .cloned()
            .ok_or(AppError::Unauthenticated)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for AuthUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AuthUser>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    fn user(role: Role, superuser: bool) -> AuthUser {
        AuthUser {
            id: 1,
            username: "u".into(),
            role,
            is_superuser: superuser,
            customers: vec![CustomerRef {
                id: 7,
                name: "acme".into(),
            }],
            method: AuthMethod::Session,
            token: None,
            client_addr: None,
        }
    }

    #[test]
    fn a_role_is_required_unless_superuser() {
        assert!(user(Role::Viewer, false).require(Role::Operator).is_err());
        assert!(user(Role::Admin, false).require(Role::Operator).is_ok());
        assert!(user(Role::Viewer, true).require(Role::Admin).is_ok());
    }

    #[test]
    fn only_members_and_superusers_see_a_customer() {
        assert!(user(Role::Admin, false).can_see_customer(7));
        assert!(!user(Role::Admin, false).can_see_customer(8));
        assert!(user(Role::Viewer, true).can_see_customer(8));
    }
}

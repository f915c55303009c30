//! Administration use cases: customers (superusers), users (superusers, and admins within
//! their customers), API tokens (everyone their own; admins those of the users they
//! manage), and the caller's own account. Every change writes its audit row in its own
//! transaction.
//!
//! Who may manage whom: a superuser manages everyone; an admin manages the users who share
//! one of the admin's customers and are not superusers, and only within those customers
//! (memberships elsewhere, which the admin does not see, are kept). Nobody can remove the
//! last active superuser.

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::{checked, in_transaction};
use crate::audit::{self, Action, Audited, Change, ObjectType, audited};
use crate::auth::password::{hash_password, random_password, verify_password};
use crate::auth::session_store;
use crate::auth::tokens::{self, Token};
use crate::auth::users::{self, NewUser, User, UserChanges};
use crate::auth::{AuthUser, Role, Scope};
use crate::customers::{self, Customer, Member};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::pagination::PageRequest;

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

fn superuser(user: &AuthUser) -> AppResult<()> {
    if user.is_superuser {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// Records `change` for `actor`, in the caller's transaction.
async fn audit(conn: &mut PgConnection, actor: &AuthUser, change: Change) -> AppResult<()> {
    audit::record(conn, actor, &change).await
}

audited!(Customer, ObjectType::Customer, name: name, customers: |c: &Customer| vec![c.id]);

// --- customers -------------------------------------------------------------------------

/// The customers (superusers).
pub async fn list_customers(
    pool: &PgPool,
    user: &AuthUser,
    page: PageRequest,
) -> AppResult<(Vec<Customer>, i64)> {
    superuser(user)?;
    customers::list(&mut *pool.acquire().await?, &Scope::all(), page).await
}

/// One customer and its members (superusers).
pub async fn customer(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
) -> AppResult<(Customer, Vec<Member>)> {
    superuser(user)?;
    let mut conn = pool.acquire().await?;
    let customer = customers::get(&mut conn, &Scope::all(), id).await?;
    let members = customers::members(&mut conn, id).await?;
    Ok((customer, members))
}

/// Creates a customer (superusers).
pub async fn create_customer(
    pool: &PgPool,
    user: &AuthUser,
    name: Option<&str>,
) -> AppResult<Customer> {
    superuser(user)?;
    let name = customers::validate_name(name).map_err(AppError::Validation)?;
    in_transaction(pool, async |tx| {
        let c = customers::create(tx, &name).await?;
        let changes = json!({"name": [null, c.name]});
        audit(tx, user, c.change(Action::Create, changes)).await?;
        Ok(c)
    })
    .await
}

/// Renames a customer (superusers).
pub async fn rename_customer(
    pool: &PgPool,
    user: &AuthUser,
    id: i64,
    name: Option<&str>,
) -> AppResult<Customer> {
    superuser(user)?;
    in_transaction(pool, async |tx| {
        let before = customers::get(tx, &Scope::all(), id).await?;
        let name = customers::validate_name(name).map_err(AppError::Validation)?;
        let after = customers::rename(tx, id, &name).await?;
        let changes = audit::diff_of(Some(&before), Some(&after));
        audit(tx, user, after.change(Action::Update, changes)).await?;
        Ok(after)
    })
    .await
}

/// Deletes a customer that holds no region, device or job (superusers).
pub async fn delete_customer(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Customer> {
    superuser(user)?;
    in_transaction(pool, async |tx| {
        let c = customers::delete(tx, id).await?;
        let changes = json!({"name": [c.name, null]});
        audit(tx, user, c.change(Action::Delete, changes)).await?;
        Ok(c)
    })
    .await
}

// --- users -----------------------------------------------------------------------------

/// Whom `user` may list: every user for superusers, the users of their customers for admins.
fn user_scope(user: &AuthUser) -> AppResult<Scope> {
    user.require(Role::Admin)?;
    Ok(user.scope())
}

audited!(User, ObjectType::User, name: username, customers: |u: &User| u.customers.clone());

/// A user `actor` may manage: visible to them (404 otherwise), and not a superuser unless
/// the actor is one. Their memberships are those within the actor's customers.
async fn managed(conn: &mut PgConnection, actor: &AuthUser, id: i64) -> AppResult<User> {
    let target = users::get(conn, &user_scope(actor)?, id).await?;
    if target.is_superuser && !actor.is_superuser {
        return Err(AppError::Forbidden);
    }
    Ok(target)
}

/// What holds in every customer of a user (their role, password, whether they may sign
/// in) is changed only by whom the whole user belongs to: a superuser, or an admin of every
/// customer of theirs. An admin of one customer of a shared user changes only memberships.
async fn wholly_managed(conn: &mut PgConnection, actor: &AuthUser, id: i64) -> AppResult<()> {
    if actor.is_superuser || users::within(conn, id, &actor.scope()).await? {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// The users `user` manages whose name contains `search`.
pub async fn list_users(
    pool: &PgPool,
    user: &AuthUser,
    search: Option<&str>,
    page: PageRequest,
) -> AppResult<(Vec<User>, i64)> {
    let scope = user_scope(user)?;
    users::list(&mut *pool.acquire().await?, &scope, search, page).await
}

/// One user `user` may see (admins and superusers; anyone may read themselves).
pub async fn user(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<User> {
    let mut conn = pool.acquire().await?;
    if id == user.id {
        return users::get(&mut conn, &Scope::all(), id).await;
    }
    users::get(&mut conn, &user_scope(user)?, id).await
}

/// What a client submits to create or change a user.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct UserInput {
    /// Sign-in name (create only).
    pub username: Option<String>,
    /// `viewer`, `operator` or `admin`.
    pub role: Option<String>,
    /// Customer ids the user belongs to.
    pub customers: Option<Vec<i64>>,
    /// Sees and manages every customer (superusers only may set it).
    pub is_superuser: Option<bool>,
    /// May sign in; `false` ends the user's sessions and revokes their tokens.
    pub is_active: Option<bool>,
    /// Password (create, write-only).
    pub password: Option<String>,
}

/// Checks a new password (and its confirmation, when the form has one).
pub fn validate_password(
    password: Option<&str>,
    confirm: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<String> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        errors.add("password", "Enter a password.");
        return None;
    };
    if password.chars().count() < MIN_PASSWORD {
        errors.add(
            "password",
            format!("Use at least {MIN_PASSWORD} characters."),
        );
    }
    if confirm.is_some_and(|c| c != password) {
        errors.add("password_confirm", "The two passwords differ.");
    }
    Some(password.to_string())
}

/// Checks the customers a user is given: each must be one the actor may hand out.
fn check_customers(actor: &AuthUser, customers: &[i64], errors: &mut FieldErrors) {
    for id in customers {
        if !actor.can_see_customer(*id) {
            errors.add("customers", format!("No customer with id {id}."));
        }
    }
}

fn parse_role(raw: Option<&str>, errors: &mut FieldErrors) -> Option<Role> {
    raw.and_then(|r| errors.check("role", Role::parse(r)))
}

/// Creates a user (admins, for their customers; superusers, for any).
pub async fn create_user(
    pool: &PgPool,
    actor: &AuthUser,
    input: &UserInput,
    confirm: Option<&str>,
    read: FieldErrors,
) -> AppResult<User> {
    user_scope(actor)?;
    let mut errors = FieldErrors::new();
    let username = input
        .username
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_string();
    if let Err(AppError::Validation(e)) = users::validate_username(&username) {
        errors.extend(e);
    }
    let role = parse_role(input.role.as_deref(), &mut errors);
    if input.role.is_none() {
        errors.add("role", "Choose a role: viewer, operator or admin.");
    }
    let customers = input.customers.clone().unwrap_or_default();
    check_customers(actor, &customers, &mut errors);
    let superuser = input.is_superuser.unwrap_or(false);
    if superuser && !actor.is_superuser {
        errors.add("is_superuser", "Only a superuser can make another one.");
    }
    if customers.is_empty() && !superuser {
        errors.add("customers", "Choose at least one customer.");
    }
    let password = validate_password(input.password.as_deref(), confirm, &mut errors);
    let (role, password) = checked(
        match (role, password) {
            (Some(r), Some(p)) if errors.is_empty() => Ok((r, p)),
            _ => Err(errors),
        },
        read,
    )?;
    let hash = hash_password(password).await?;
    in_transaction(pool, async |tx| {
        let new = NewUser {
            username: &username,
            password_hash: &hash,
            role,
            is_superuser: superuser,
        };
        let id = users::create_user(tx, &new).await?;
        users::set_customers(tx, id, &customers, &Scope::all()).await?;
        let created = users::get(tx, &Scope::all(), id).await?;
        let changes = audit::diff_of(None, Some(&created));
        audit(tx, actor, created.change(Action::Create, changes)).await?;
        Ok(created)
    })
    .await
}

/// Changes a user's role, customers, superuser flag or activity. Deactivating ends their
/// sessions and revokes their tokens; nobody can deactivate or demote the last active
/// superuser.
pub async fn update_user(
    pool: &PgPool,
    actor: &AuthUser,
    id: i64,
    input: &UserInput,
    read: FieldErrors,
) -> AppResult<User> {
    in_transaction(pool, async |tx| {
        users::lock(tx, id).await?;
        let before = managed(tx, actor, id).await?;
        let role_changes = input
            .role
            .as_deref()
            .is_some_and(|r| r != before.role.as_str());
        let activity_changes = input.is_active.is_some_and(|a| a != before.is_active);
        if role_changes || activity_changes {
            wholly_managed(tx, actor, id).await?;
        }
        let mut errors = read;
        let role = parse_role(input.role.as_deref(), &mut errors);
        if let Some(customers) = &input.customers {
            check_customers(actor, customers, &mut errors);
        }
        if input.is_superuser.is_some_and(|s| s != before.is_superuser) && !actor.is_superuser {
            errors.add("is_superuser", "Only a superuser can change this.");
        }
        if input
            .username
            .as_deref()
            .is_some_and(|u| u != before.username)
        {
            errors.add("username", "A username cannot change.");
        }
        errors.into_result()?;
        let loses_superuser = before.is_superuser
            && before.is_active
            && (input.is_superuser == Some(false) || input.is_active == Some(false));
        if loses_superuser && users::active_superusers(tx).await? <= 1 {
            return Err(AppError::Validation(FieldErrors::single(
                if input.is_active == Some(false) {
                    "is_active"
                } else {
                    "is_superuser"
                },
                "This is the last active superuser: make another user a superuser first.",
            )));
        }
        let changes = UserChanges {
            role,
            is_superuser: input.is_superuser,
            is_active: input.is_active,
        };
        users::update(tx, id, &changes).await?;
        if let Some(customers) = &input.customers {
            users::set_customers(tx, id, customers, &actor.scope()).await?;
        }
        // As the actor sees the user: another customer's memberships are not theirs to show.
        let scope = user_scope(actor)?;
        let seen = match users::get(tx, &scope, id).await {
            Ok(after) => after,
            Err(AppError::NotFound) => User {
                customers: Vec::new(),
                customer_names: Vec::new(),
                ..before.clone()
            },
            Err(e) => return Err(e),
        };
        let mut diff = audit::diff_of(Some(&before), Some(&seen));
        if input.is_active == Some(false) && before.is_active {
            let sessions = session_store::end_sessions(tx, id, None).await?;
            let tokens = tokens::revoke_all(tx, id).await?;
            diff["ended"] = json!({"sessions": sessions, "tokens": tokens});
        }
        let mut change = seen.change(Action::Update, diff);
        // The customers it left see the change too: their admins made it, or must know.
        for c in &before.customers {
            if !change.customer_ids.contains(c) {
                change.customer_ids.push(*c);
            }
        }
        audit(tx, actor, change).await?;
        Ok(seen)
    })
    .await
}

/// Sets a managed user's password: the one given, or (with `None`) a generated one, which
/// is returned to be shown once.
pub async fn set_password(
    pool: &PgPool,
    actor: &AuthUser,
    id: i64,
    password: Option<&str>,
    confirm: Option<&str>,
) -> AppResult<(User, Option<String>)> {
    let (password, generated) = match password {
        Some(p) => {
            let mut errors = FieldErrors::new();
            let p = validate_password(Some(p), confirm, &mut errors);
            errors.into_result()?;
            (p.unwrap_or_default(), false)
        }
        None => (random_password(), true),
    };
    let hash = hash_password(password.clone()).await?;
    let target = in_transaction(pool, async |tx| {
        users::lock(tx, id).await?;
        let target = managed(tx, actor, id).await?;
        wholly_managed(tx, actor, id).await?;
        users::set_password_hash(tx, id, &hash).await?;
        let changes = json!({"password": "changed"});
        audit(tx, actor, target.change(Action::SetPassword, changes)).await?;
        Ok(target)
    })
    .await?;
    Ok((target, generated.then_some(password)))
}

/// Changes the caller's own password; the current one is required.
pub async fn change_own_password(
    pool: &PgPool,
    user: &AuthUser,
    current: Option<&str>,
    new: Option<&str>,
    confirm: Option<&str>,
) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    let stored = users::password_hash(&mut *pool.acquire().await?, user.id).await?;
    let current_ok = verify_password(current.unwrap_or_default().to_string(), stored).await?;
    if !current_ok {
        errors.add("current_password", "This is not your current password.");
    }
    let password = validate_password(new, confirm, &mut errors);
    errors.into_result()?;
    let hash = hash_password(password.unwrap_or_default()).await?;
    in_transaction(pool, async |tx| {
        users::set_password_hash(tx, user.id, &hash).await?;
        let me = users::get(tx, &Scope::all(), user.id).await?;
        let changes = json!({"password": "changed"});
        audit(tx, user, me.change(Action::SetPassword, changes)).await
    })
    .await
}

/// Ends the caller's other browser sessions; returns how many.
pub async fn sign_out_elsewhere(pool: &PgPool, user: &AuthUser, current: &str) -> AppResult<u64> {
    Ok(session_store::end_sessions(&mut *pool.acquire().await?, user.id, Some(current)).await?)
}

// --- tokens ----------------------------------------------------------------------------

fn token_change(t: &Token, customers: &[i64], action: Action, changes: Value) -> Change {
    Change {
        object_type: ObjectType::Token,
        object_id: Some(t.id),
        object_repr: format!("{} ({})", t.name, t.username),
        action,
        customer_ids: customers.to_vec(),
        changes,
    }
}

/// The tokens of `owner` (the caller by default; another user they manage for admins).
pub async fn list_tokens(
    pool: &PgPool,
    user: &AuthUser,
    owner: Option<i64>,
) -> AppResult<Vec<Token>> {
    let mut conn = pool.acquire().await?;
    let owner = match owner {
        Some(id) if id != user.id => managed(&mut conn, user, id).await?.id,
        _ => user.id,
    };
    Ok(tokens::list(&mut conn, &[owner]).await?)
}

/// The tokens of every user `user` manages, themselves included.
pub async fn managed_tokens(pool: &PgPool, user: &AuthUser) -> AppResult<Vec<Token>> {
    let mut conn = pool.acquire().await?;
    let (managed, _) = users::list(
        &mut conn,
        &user_scope(user)?,
        None,
        PageRequest {
            page: 1,
            page_size: crate::pagination::MAX_PAGE_SIZE,
        },
    )
    .await?;
    let ids: Vec<i64> = managed
        .iter()
        .filter(|u| user.is_superuser || !u.is_superuser)
        .map(|u| u.id)
        .chain([user.id])
        .collect();
    Ok(tokens::list(&mut conn, &ids).await?)
}

/// Creates a token for the caller; returns it with its secret, shown once.
pub async fn create_token(
    pool: &PgPool,
    user: &AuthUser,
    name: Option<&str>,
    expires_at: Option<OffsetDateTime>,
    read: FieldErrors,
) -> AppResult<(Token, String)> {
    let mut errors = read;
    let name = name.unwrap_or_default().trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.add(
            "name",
            "Name the token (1 to 200 characters), e.g. what uses it.",
        );
    }
    if expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
        errors.add("expires_at", "Choose a time in the future, or none.");
    }
    errors.into_result()?;
    in_transaction(pool, async |tx| {
        let (token, secret) = tokens::create_expiring(tx, user.id, &name, expires_at).await?;
        let customers: Vec<i64> = user.customers.iter().map(|c| c.id).collect();
        let changes = audit::diff_of(None, Some(&token));
        audit(
            tx,
            user,
            token_change(&token, &customers, Action::Create, changes),
        )
        .await?;
        Ok((token, secret))
    })
    .await
}

/// Revokes a token: the caller's own, or one of a user they manage.
pub async fn revoke_token(pool: &PgPool, user: &AuthUser, id: i64) -> AppResult<Token> {
    in_transaction(pool, async |tx| {
        let token = tokens::get(tx, id).await?.ok_or(AppError::NotFound)?;
        let customers = if token.user_id == user.id {
            user.customers.iter().map(|c| c.id).collect()
        } else {
            // Another user's token is "not found" unless the caller manages that user.
            match managed(tx, user, token.user_id).await {
                Ok(owner) => owner.customers,
                Err(AppError::Forbidden) => return Err(AppError::NotFound),
                Err(e) => return Err(e),
            }
        };
        tokens::revoke(tx, id).await?;
        let changes = json!({"name": [token.name, null]});
        audit(
            tx,
            user,
            token_change(&token, &customers, Action::Delete, changes),
        )
        .await?;
        Ok(token)
    })
    .await
}

// --- audit -----------------------------------------------------------------------------

/// The audit rows `user` may read: those of their customers (every row for superusers).
pub async fn audit_log(
    pool: &PgPool,
    user: &AuthUser,
    filter: &audit::Filter,
    page: PageRequest,
) -> AppResult<(Vec<audit::Entry>, i64)> {
    audit::list(&mut *pool.acquire().await?, &user.scope(), filter, page).await
}

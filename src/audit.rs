//! The audit trail: one row per change (who, when, from where, what, before → after),
//! written by the use cases in the transaction of the change, so that a change that rolls
//! back leaves no row. Secrets never reach it: a changed password is recorded as "changed".

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use time::OffsetDateTime;

use crate::auth::{AuthUser, Scope};
use crate::db::push_condition;
use crate::error::AppResult;
use crate::pagination::PageRequest;
use crate::types::words;

words! {
    /// The kind of object a change touched.
    pub enum ObjectType {
        /// A tenant.
        Customer = "customer",
        /// A person.
        User = "user",
        /// An API token.
        Token = "token",
        /// A region.
        Region = "region",
        /// A device (or, in a bulk assignment, many).
        Device = "device",
        /// A device credential.
        Credential = "credential",
        /// A job.
        Job = "job",
    }
}

words! {
    /// What was done.
    pub enum Action {
        /// Created.
        Create = "create",
        /// Changed.
        Update = "update",
        /// Deleted (or, for a token, revoked).
        Delete = "delete",
        /// Many devices moved to a region at once.
        BulkAssign = "bulk_assign",
        /// Many devices changed at once.
        BulkEdit = "bulk_edit",
        /// A region's health set by hand.
        Health = "health",
        /// A job submitted.
        Submit = "submit",
        /// A job cancelled.
        Cancel = "cancel",
        /// A job retried.
        Retry = "retry",
        /// A password set or reset.
        SetPassword = "set_password",
    }
}

/// An object whose changes the audit trail records.
pub trait Audited {
    /// What the audit trail calls it.
    const OBJECT: ObjectType;

    /// Its id.
    fn id(&self) -> i64;

    /// Its name, as the audit trail keeps it.
    fn repr(&self) -> String;

    /// The customers whose members may read its rows.
    fn customer_ids(&self) -> Vec<i64>;

    /// The row saying that `action` changed it by `changes`.
    fn change(&self, action: Action, changes: Value) -> Change {
        Change {
            object_type: Self::OBJECT,
            object_id: Some(self.id()),
            object_repr: self.repr(),
            action,
            customer_ids: self.customer_ids(),
            changes,
        }
    }
}

/// Implements [`Audited`] for a type with an `id`, from its audit kind, the field that names
/// it, and how its customers are read.
macro_rules! audited {
    ($ty:ty, $object:expr, name: $name:ident, customers: $customers:expr) => {
        impl $crate::audit::Audited for $ty {
            const OBJECT: $crate::audit::ObjectType = $object;

            fn id(&self) -> i64 {
                self.id
            }

            fn repr(&self) -> String {
                self.$name.clone()
            }

            fn customer_ids(&self) -> Vec<i64> {
                $customers(self)
            }
        }
    };
}
pub(crate) use audited;

/// One change to record.
#[derive(Debug, Clone)]
pub struct Change {
    /// The kind of object.
    pub object_type: ObjectType,
    /// Its id (none for a bulk change).
    pub object_id: Option<i64>,
    /// Its name when the change happened.
    pub object_repr: String,
    /// What was done.
    pub action: Action,
    /// The customers whose members may read the row (empty: superusers only).
    pub customer_ids: Vec<i64>,
    /// Field → `[before, after]`, or another JSON value for bulk changes.
    pub changes: Value,
}

/// Fields that change on their own or derive from others, left out of diffs.
const NOT_CHANGES: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "last_health_check",
    "last_login",
    "last_used_at",
    "device_count",
    // The first characters of a token's secret.
    "prefix",
];

/// `{field: [before, after]}` for every top-level field that differs between two
/// serializations (`Value::Null` on one side for a create or a delete).
pub fn diff(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for key in before.keys().chain(after.keys()) {
        if NOT_CHANGES.contains(&key.as_str()) || out.contains_key(key) {
            continue;
        }
        let (b, a) = (
            before.get(key).unwrap_or(&Value::Null),
            after.get(key).unwrap_or(&Value::Null),
        );
        if b != a {
            out.insert(key.clone(), Value::Array(vec![b.clone(), a.clone()]));
        }
    }
    Value::Object(out)
}

/// The diff of two serializable values.
pub fn diff_of<T: Serialize>(before: Option<&T>, after: Option<&T>) -> Value {
    let json =
        |v: Option<&T>| v.map_or(Value::Null, |v| serde_json::to_value(v).unwrap_or_default());
    diff(&json(before), &json(after))
}

/// Appends a row for `change` made by `actor`.
pub async fn record(conn: &mut PgConnection, actor: &AuthUser, change: &Change) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor_id, actor, token, client_addr, customer_ids, object_type,
                                object_id, object_repr, action, changes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(actor.id)
    .bind(&actor.username)
    .bind(&actor.token)
    .bind(actor.client_addr.map(ipnet::IpNet::from))
    .bind(&change.customer_ids)
    .bind(change.object_type)
    .bind(change.object_id)
    .bind(&change.object_repr)
    .bind(change.action)
    .bind(sqlx::types::Json(&change.changes))
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends a common table expression, `audited`, writing the row of `change` made by
/// `actor`, for a statement that makes the change itself: the change and its row are then one
/// statement, all or nothing without a transaction around them. The object is `object_id`,
/// an SQL expression over the statement's table `from` (such as `job.id` of `job`, a row the
/// statement inserts), and `{id}` in `change.object_repr` stands for that id.
pub fn push_record_cte(
    qb: &mut QueryBuilder<Postgres>,
    actor: &AuthUser,
    change: &Change,
    (from, object_id): (&str, &str),
) {
    qb.push(
        "audited AS (
           INSERT INTO audit_log (actor_id, actor, token, client_addr, customer_ids, object_type,
                                  object_id, object_repr, action, changes)
           SELECT ",
    );
    qb.push_bind(actor.id)
        .push(", ")
        .push_bind(actor.username.clone())
        .push(", ")
        .push_bind(actor.token.clone())
        .push(", ")
        .push_bind(actor.client_addr.map(ipnet::IpNet::from))
        .push(", ")
        .push_bind(change.customer_ids.clone())
        .push(", ")
        .push_bind(change.object_type)
        .push(format_args!(", {object_id}, replace("))
        .push_bind(change.object_repr.clone())
        .push(format_args!(", '{{id}}', {object_id}::text), "))
        .push_bind(change.action)
        .push(", ")
        .push_bind(sqlx::types::Json(change.changes.clone()))
        .push(format_args!(" FROM {from})"));
}

/// An audit row as the API and the page show it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Entry {
    /// Id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who (username at the time).
    pub actor: String,
    /// The API token's name, when the change came through one.
    pub token: Option<String>,
    /// The client's address, when known.
    pub client_addr: Option<String>,
    /// The customer the object belongs to (the first, for a user of several).
    pub customer: Option<i64>,
    /// The kind of object.
    pub object_type: ObjectType,
    /// Its id.
    pub object_id: Option<i64>,
    /// Its name when the change happened.
    pub object_repr: String,
    /// What was done.
    pub action: Action,
    /// Field → `[before, after]`; secrets appear only as "changed".
    #[schema(value_type = Object)]
    pub changes: sqlx::types::Json<Value>,
}

impl Entry {
    /// The changes as `(field, before, after)` text, for the page.
    pub fn change_lines(&self) -> Vec<(String, String, String)> {
        let text = |v: &Value| match v {
            Value::Null => "—".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match &self.changes.0 {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::Array(pair) if pair.len() == 2 => {
                        (k.clone(), text(&pair[0]), text(&pair[1]))
                    }
                    other => (k.clone(), String::new(), text(other)),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What the audit list can be narrowed to.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Username of the actor.
    pub actor: Option<String>,
    /// Kind of object.
    pub object_type: Option<ObjectType>,
    /// One object (with `object_type`).
    pub object_id: Option<i64>,
    /// From this time on.
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
}

fn push_conditions(qb: &mut QueryBuilder<Postgres>, scope: &Scope, filter: &Filter) {
    qb.push(" WHERE true");
    if let Some(ids) = scope.ids() {
        qb.push(" AND customer_ids && ").push_bind(ids.to_vec());
    }
    push_condition(qb, "actor = ", filter.actor.clone());
    push_condition(qb, "object_type = ", filter.object_type);
    push_condition(qb, "object_id = ", filter.object_id);
    push_condition(qb, "at >= ", filter.since);
    push_condition(qb, "at < ", filter.until);
}

/// A page of audit rows in scope, newest first, and how many match.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &Filter,
    page: PageRequest,
) -> AppResult<(Vec<Entry>, i64)> {
    let mut qb = QueryBuilder::new("SELECT count(*) FROM audit_log");
    push_conditions(&mut qb, scope, filter);
    let count: i64 = qb.build_query_scalar().fetch_one(&mut *conn).await?;
    let mut qb = QueryBuilder::new(
        "SELECT id, at, actor, token, host(client_addr) AS client_addr, customer_ids[1] AS customer, object_type,
                object_id, object_repr, action, changes
         FROM audit_log",
    );
    push_conditions(&mut qb, scope, filter);
    qb.push(" ORDER BY at DESC, id DESC");
    page.push_limit(&mut qb);
    let rows = qb.build_query_as::<Entry>().fetch_all(conn).await?;
    Ok((rows, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_lists_changed_fields_only() {
        let before = json!({"id": 1, "name": "a", "priority": 1, "updated_at": "x"});
        let after = json!({"id": 1, "name": "b", "priority": 1, "updated_at": "y"});
        assert_eq!(diff(&before, &after), json!({"name": ["a", "b"]}));
    }

    #[test]
    fn a_create_has_every_field_from_null() {
        assert_eq!(
            diff(&Value::Null, &json!({"name": "a"})),
            json!({"name": [null, "a"]})
        );
    }
}

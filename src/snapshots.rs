//! Configuration snapshots taken by `config_backup` jobs, and SSH host key trust.

use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;

use crate::auth::Scope;
use crate::devices;
use crate::error::{AppError, AppResult};

/// A saved configuration.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Snapshot {
    /// Id.
    pub id: i64,
    /// Device.
    #[serde(rename = "device")]
    pub device_id: i64,
    /// The backup job that took it.
    #[serde(rename = "job")]
    pub job_id: Option<i64>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// SHA-256 of the text.
    pub config_hash: String,
    /// The configuration.
    pub config_text: String,
}

/// A device's snapshots, newest first (device in scope, else 404).
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    device_id: i64,
) -> AppResult<Vec<Snapshot>> {
    devices::get(conn, scope, device_id).await?;
    Ok(sqlx::query_as(
        "SELECT id, device_id, job_id, created_at, config_hash, config_text FROM config_snapshots
         WHERE device_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500",
    )
    .bind(device_id)
    .fetch_all(conn)
    .await?)
}

/// One snapshot of a device in scope.
pub async fn get(
    conn: &mut PgConnection,
    scope: &Scope,
    device_id: i64,
    id: i64,
) -> AppResult<Snapshot> {
    devices::get(conn, scope, device_id).await?;
    sqlx::query_as(
        "SELECT id, device_id, job_id, created_at, config_hash, config_text FROM config_snapshots
         WHERE device_id = $1 AND id = $2",
    )
    .bind(device_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(AppError::NotFound)
}

/// A device's SSH host key state.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct HostKey {
    /// Trusted fingerprint (first use), if any.
    pub ssh_host_key: Option<String>,
    /// A different fingerprint the device presented since; it fails until accepted.
    pub ssh_host_key_presented: Option<String>,
}

/// Picks one device in the caller's scope (`$1` its id, `$2` the scope's customers).
const ONE_DEVICE: &str = "id = $1 AND ($2::bigint[] IS NULL OR customer_id = ANY($2))";

/// The device's host key state.
pub async fn host_key(
    conn: &mut PgConnection,
    scope: &Scope,
    device_id: i64,
) -> AppResult<HostKey> {
    let sql =
        format!("SELECT ssh_host_key, ssh_host_key_presented FROM devices WHERE {ONE_DEVICE}");
    host_keys(conn, scope, device_id, sql).await
}

/// Trusts the key the device presented last (or, with none pending, forgets the trusted key
/// so the next connection trusts on first use again).
pub async fn accept_host_key(
    conn: &mut PgConnection,
    scope: &Scope,
    device_id: i64,
) -> AppResult<HostKey> {
    let sql = format!(
        "UPDATE devices SET ssh_host_key = ssh_host_key_presented, ssh_host_key_presented = NULL
         WHERE {ONE_DEVICE} RETURNING ssh_host_key, ssh_host_key_presented"
    );
    host_keys(conn, scope, device_id, sql).await
}

/// Runs `sql` (filtered by [`ONE_DEVICE`]) and answers the device's host keys; another
/// customer's device is not found.
async fn host_keys(
    conn: &mut PgConnection,
    scope: &Scope,
    device_id: i64,
    sql: String,
) -> AppResult<HostKey> {
    sqlx::query_as::<_, HostKey>(sqlx::AssertSqlSafe(sql))
        .bind(device_id)
        .bind(scope.ids())
        .fetch_optional(conn)
        .await?
        .ok_or(AppError::NotFound)
}

/// A diff line: `' '` unchanged, `'-'` removed, `'+'` added.
pub type DiffLine = (char, String);

/// Two snapshots compared.
#[derive(Debug, Clone)]
pub struct ConfigDiff {
    /// Older snapshot id.
    pub from: i64,
    /// Newer snapshot id.
    pub to: i64,
    /// The lines.
    pub lines: Vec<DiffLine>,
}

/// Line diff of two configurations, for the UI.
pub fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence; configurations are a few thousand lines at most.
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 25_000_000 {
        return a
            .iter()
            .map(|l| ('-', l.to_string()))
            .chain(b.iter().map(|l| ('+', l.to_string())))
            .collect();
    }
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            out.push((' ', a[i].to_string()));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(('-', a[i].to_string()));
            i += 1;
        } else {
            out.push(('+', b[j].to_string()));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| ('-', l.to_string())));
    out.extend(b[j..].iter().map(|l| ('+', l.to_string())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_marks_removed_and_added_lines() {
        let d = diff("a\nb\nc", "a\nc\nd");
        assert_eq!(
            d,
            [
                (' ', "a".into()),
                ('-', "b".into()),
                (' ', "c".into()),
                ('+', "d".into())
            ]
        );
        assert!(diff("x", "x").iter().all(|(k, _)| *k == ' '));
    }
}

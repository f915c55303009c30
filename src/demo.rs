//! `webnet seed-demo`: realistic data for trying webnet out and for benchmarks.

use sqlx::PgConnection;

use crate::error::AppResult;

/// Region identifiers and names drawn from for demo regions.
const REGION_NAMES: &[(&str, &str)] = &[
    ("us-east-1", "US East (Virginia)"),
    ("us-east-2", "US East (Ohio)"),
    ("us-west-1", "US West (California)"),
    ("us-west-2", "US West (Oregon)"),
    ("ca-central-1", "Canada (Montreal)"),
    ("sa-east-1", "South America (Sao Paulo)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("eu-west-2", "Europe (London)"),
    ("eu-west-3", "Europe (Paris)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("eu-north-1", "Europe (Stockholm)"),
    ("eu-south-1", "Europe (Milan)"),
    ("me-south-1", "Middle East (Bahrain)"),
    ("af-south-1", "Africa (Cape Town)"),
    ("ap-south-1", "Asia Pacific (Mumbai)"),
    ("ap-east-1", "Asia Pacific (Hong Kong)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
    ("ap-northeast-2", "Asia Pacific (Seoul)"),
    ("ap-southeast-1", "Asia Pacific (Singapore)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
];

/// What `seed` created.
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    /// The demo customer's id.
    pub customer_id: i64,
    /// Regions now in the customer.
    pub regions: i64,
    /// Devices now in the customer.
    pub devices: i64,
}

/// Fills `customer` with `regions` regions and `devices` devices: ten sites per region,
/// four roles, three vendors with their platforms, sequential addresses in 10.0.0.0/8, and
/// 90 % of devices assigned to their site's region. Set-based SQL, so 100,000 devices take
/// seconds. Running it again adds nothing that exists already.
pub async fn seed(
    conn: &mut PgConnection,
    customer: &str,
    regions: i64,
    devices: i64,
) -> AppResult<Seeded> {
    let (customer_id, _) = crate::customers::ensure(conn, customer).await?;
    let names: Vec<String> = (0..regions)
        .map(|i| {
            let (id, name) = REGION_NAMES[i as usize % REGION_NAMES.len()];
            let round = i as usize / REGION_NAMES.len();
            if round == 0 {
                format!("{id}\t{name}")
            } else {
                format!("{id}-{round}\t{name} {}", round + 1)
            }
        })
        .collect();
    sqlx::query(
        "INSERT INTO regions (customer_id, identifier, name, priority, health_check_interval_seconds,
                              worker_pool_config)
         SELECT $1, split_part(n, E'\\t', 1), split_part(n, E'\\t', 2), 100 + (ord * 7) % 100, 30,
                '{\"min_workers\": 1}'::jsonb
         FROM unnest($2::text[]) WITH ORDINALITY AS t(n, ord)
         ON CONFLICT (customer_id, identifier) DO NOTHING",
    )
    .bind(customer_id)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO devices (customer_id, hostname, mgmt_ip, port, vendor, platform, role, site, tags)
         SELECT $1,
                format('%s-%s-%s', site, role, lpad(i::text, 6, '0')),
                '10.0.0.0'::inet + i,
                22,
                (ARRAY['cisco', 'juniper', 'arista'])[1 + i % 3],
                (ARRAY['ios', 'junos', 'eos'])[1 + i % 3],
                role,
                site,
                ARRAY['demo']
         FROM generate_series(1, $2) AS i,
              LATERAL (SELECT abs(hashint8(i)) % $3 * 10 + abs(hashint8(i + 1)) % 10 AS site_no) s,
              LATERAL (SELECT format('s%s', lpad(s.site_no::text, 3, '0')) AS site,
                              (ARRAY['core', 'edge', 'access', 'dist'])[1 + i % 4] AS role) n
         ON CONFLICT (customer_id, hostname) DO NOTHING",
    )
    .bind(customer_id)
    .bind(devices)
    .bind(regions.max(1))
    .execute(&mut *conn)
    .await?;
    // Ten sites per region; one device in ten stays without a region.
    sqlx::query(
        "WITH r AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS idx, count(*) OVER () AS total
                    FROM regions WHERE customer_id = $1)
         UPDATE device_assignments a SET region_id = r.id
         FROM devices d, r
         WHERE a.device_id = d.id AND d.customer_id = $1 AND a.region_id IS NULL
           AND abs(hashint8(-d.id)) % 10 <> 0
           AND r.idx = (substring(d.site FROM 2)::int / 10) % r.total",
    )
    .bind(customer_id)
    .execute(&mut *conn)
    .await?;
    analyze(conn).await?;
    let (regions, devices): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM regions WHERE customer_id = $1),
                (SELECT count(*) FROM devices WHERE customer_id = $1)",
    )
    .bind(customer_id)
    .fetch_one(conn)
    .await?;
    Ok(Seeded {
        customer_id,
        regions,
        devices,
    })
}

/// Refreshes the statistics and visibility maps of the device tables after a bulk load, so
/// that counts use index-only scans straight away.
pub async fn analyze(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("VACUUM (ANALYZE) devices, device_assignments")
        .execute(conn)
        .await?;
    Ok(())
}

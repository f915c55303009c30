//! `--suite notify`: what idle listeners cost a notification. Every webnet worker holds a
//! LISTEN connection for its own queues' channels; this measures the time from a NOTIFY's
//! commit to its delivery on one listener while more and more other connections listen on
//! channels of their own, as a fleet's workers do.

use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};

use super::support::p50_p99;

/// Notifications timed per step.
const PROBES: usize = 200;

/// For 0, 50, 100, 200 and 400 idle listeners (as many as `max_connections` leaves room for),
/// the NOTIFY→delivery time of 200 notifications, paced 10 ms apart, on the probe channel.
pub(super) async fn measure_notify(url: &str) -> anyhow::Result<()> {
    let mut notifier = PgConnection::connect(url).await?;
    let (max, used): (i32, i64) = sqlx::query_as(
        "SELECT current_setting('max_connections')::int, (SELECT count(*) FROM pg_stat_activity)",
    )
    .fetch_one(&mut notifier)
    .await?;
    let room = (i64::from(max) - used - 10).max(0) as usize;
    println!();
    println!("| idle listeners (other channels) | NOTIFY→delivery p50 / p99 |");
    println!("| --- | --- |");
    let mut probe = PgListener::connect(url).await?;
    probe.listen("wn_probe").await?;
    let mut idle: Vec<PgListener> = Vec::new();
    for want in [0usize, 50, 100, 200, 400] {
        if want > room {
            println!("| {want} | (skipped: max_connections {max} leaves room for {room}) |");
            continue;
        }
        while idle.len() < want {
            let mut l = PgListener::connect(url).await?;
            l.listen(&format!("wn_idle_{}", idle.len())).await?;
            idle.push(l);
        }
        let mut times = Vec::with_capacity(PROBES);
        for i in 0..PROBES {
            let sent = Instant::now();
            sqlx::query("SELECT pg_notify('wn_probe', $1)")
                .bind(i.to_string())
                .execute(&mut notifier)
                .await?;
            tokio::time::timeout(Duration::from_secs(5), probe.recv()).await??;
            times.push(sent.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.sort();
        println!("| {want} | {} |", p50_p99(&times));
    }
    Ok(())
}

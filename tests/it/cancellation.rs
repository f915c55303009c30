//! Requests cancelled halfway (their client went away) leave no connection inside a
//! transaction.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Whether the pool's one connection is inside a transaction: `SAVEPOINT` is refused
/// outside a transaction block.
async fn stuck_in_a_transaction(pool: &PgPool) -> bool {
    sqlx::query("SAVEPOINT probe").execute(pool).await.is_ok()
}

#[sqlx::test]
async fn a_transaction_cancelled_while_it_begins_is_rolled_back_before_its_connection_is_reused(
    pool: PgPool,
) {
    // One connection, so every attempt reuses the one the previous attempt left behind.
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    assert!(!stuck_in_a_transaction(&one).await);
    // Cancel at every point from before the BEGIN is sent to after its answer came back.
    let mut completed = 0;
    for micros in (0..400).step_by(4) {
        let begun =
            tokio::time::timeout(Duration::from_micros(micros), webnet::db::begin(&one)).await;
        if let Ok(tx) = begun {
            completed += 1;
            drop(tx);
        }
        assert!(
            !stuck_in_a_transaction(&one).await,
            "the connection stayed in a transaction after a BEGIN cancelled at {micros} µs"
        );
    }
    assert!(completed < 100, "some attempts must have been cancelled");
}

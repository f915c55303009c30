//! Requests cancelled halfway (their client went away) leave no connection inside a
//! transaction.

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
    // Cancel at every point from before the BEGIN is sent to after its answer came back:
    // poll the beginning once, then once more after each of `yields` turns of the runtime,
    // and drop it if it has not finished (as axum drops a request whose client went away).
    let mut cancelled = 0;
    for yields in 0..200 {
        let mut begin = Box::pin(webnet::db::begin(&one));
        let mut finished = false;
        for _ in 0..=yields {
            if let std::task::Poll::Ready(tx) = futures::poll!(begin.as_mut()) {
                drop(tx);
                finished = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(begin);
        cancelled += usize::from(!finished);
        assert!(
            !stuck_in_a_transaction(&one).await,
            "the connection stayed in a transaction after a BEGIN cancelled after {yields} yields"
        );
    }
    assert!(cancelled > 0, "some attempts must have been cancelled");
}

//! Server-Sent Events for live health badges (htmx's SSE extension swaps them).

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::page::SignedIn;
use super::regions::HealthStatusPartial;
use crate::live::LiveMessage;
use crate::state::AppState;

/// `GET /events`: one `region-health-<id>` event per health change of a region the user
/// sees, carrying the badge's new inner HTML. The stream ends when the server shuts down.
pub async fn get_events(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let scope = signed_in.user.scope();
    let stream = BroadcastStream::new(state.live.subscribe())
        // A lagging browser skips intermediate states; the next change is all it needs.
        .filter_map(Result::ok)
        .take_while(|m| !matches!(m, LiveMessage::Shutdown))
        .filter_map(move |m| match m {
            LiveMessage::Health(change) if scope.contains(change.customer_id) => {
                let badge = HealthStatusPartial {
                    status: change.health_status,
                    message: change.health_message,
                    awaiting: false,
                };
                let html = badge.render().ok()?;
                Some(Ok(Event::default()
                    .event(format!("region-health-{}", change.id))
                    .data(html.trim())))
            }
            _ => None,
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

//! `GET /events`: server-sent events of the queue's changes (arrivals,
//! releases, moves, removals) as JSON, `mailbox=` to hear one capture
//! mailbox only. The web interface updates its list from them.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::AdminDeps;

#[derive(Debug, Default, serde::Deserialize)]
pub struct Only {
    mailbox: Option<String>,
}

pub async fn stream(
    State(deps): State<AdminDeps>,
    Query(only): Query<Only>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = deps.store.events();
    let stop = deps.stop.clone();
    let stream = stream::unfold(
        (events, only, stop),
        |(mut events, only, mut stop)| async move {
            loop {
                let received = tokio::select! {
                    r = events.recv() => r,
                    _ = stopped(&mut stop) => return None,
                };
                match received {
                    Ok(event) => {
                        if only
                            .mailbox
                            .as_ref()
                            .is_some_and(|m| event.mailbox.as_deref() != Some(m.as_str()))
                        {
                            continue;
                        }
                        let data = serde_json::to_string(&event).unwrap_or_default();
                        let sse = Event::default().event(event.kind).data(data);
                        return Some((Ok(sse), (events, only, stop)));
                    }
                    // Fell behind: the listener reloads its list.
                    Err(RecvError::Lagged(_)) => {
                        let sse = Event::default().event("lagged").data("{}");
                        return Some((Ok(sse), (events, only, stop)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Resolves when the service stops (never without a stop signal).
pub async fn stopped(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(stop) => {
            let _ = stop.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

//! `GET /events/stream`: Server-Sent Events from a position on, catch-up then live, and the
//! log's signed checkpoints.
//!
//! The feed ([`careledger_app::feed`]) renders each durable event once with [`render`] and shares
//! it with every subscriber; a [`Subscription`] sends what became visible to its caller since its
//! last wake-up in one write, a heartbeat after [`HEARTBEAT`] of silence (one timer, re-armed
//! when it fires), and reads the ledger by position when it is further behind than the feed.
//!
//! Checkpoints ([`render_checkpoint`]) go to every subscriber: the latest once when it connects,
//! then each one the checkpointer signs. They carry no `id:`, so that `Last-Event-ID` keeps
//! naming the last event's position: a client that reconnects resumes by position as before, and
//! gets the latest checkpoint again at the start.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use careledger_app::actors::{AccessRole, RegisteredActor};
use careledger_app::feed::{CheckpointItem, Feed, FeedItem, Render, SignedCheckpoint};
use careledger_core::ids::PatientId;
use careledger_core::FramedEvent;

use crate::error::ApiError;
use crate::extract::{parse_u64, Caller, Query};
use crate::limits::StreamSlot;
use crate::routes::blocking;
use crate::state::AppState;
use crate::wire::names::{StreamEventType, WireName};
use crate::wire::{CheckpointEventView, PageQuery, ProblemDetails, RecordedEventView};

/// How often an idle SSE connection gets a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// How the feed renders for this server: events and checkpoints as Server-Sent Events.
pub const RENDER: Render = Render {
    event: render,
    checkpoint: render_checkpoint,
};

/// One durable event as a Server-Sent Event: `id` (its position), `event` (its type) and one
/// `data` line (its JSON, which has no newlines, with the stored frame in base64).
pub fn render(event: &FramedEvent) -> Bytes {
    let data = serde_json::to_string(&RecordedEventView::from(event)).unwrap_or_default();
    let kind = event.event.record.event.kind();
    let position = event.event.position.to_string();
    sse(Some(&position), kind, &data)
}

/// A signed checkpoint as a Server-Sent Event: `event: checkpoint` and one `data` line (a
/// [`CheckpointEventView`]: the note's newlines are escaped in its JSON), without an `id`, so
/// that the client's last event id stays the last event's position.
pub fn render_checkpoint(checkpoint: &SignedCheckpoint<'_>) -> Bytes {
    let view = CheckpointEventView::new(
        checkpoint.origin,
        checkpoint.size,
        &checkpoint.root,
        checkpoint.note,
    );
    let data = serde_json::to_string(&view).unwrap_or_default();
    sse(None, StreamEventType::Checkpoint.as_str(), &data)
}

/// The bytes of one Server-Sent Event.
fn sse(id: Option<&str>, kind: &str, data: &str) -> Bytes {
    let mut frame = Vec::with_capacity(data.len() + kind.len() + 40);
    if let Some(id) = id {
        frame.extend_from_slice(b"id: ");
        frame.extend_from_slice(id.as_bytes());
        frame.push(b'\n');
    }
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(kind.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(data.as_bytes());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// Server-Sent Events from a position on: catch-up, then live; and the log's checkpoints.
///
/// Each recorded event's SSE `id` is its position, its `event` its type, its `data` the
/// recorded event as `GET /events` gives it (a `RecordedEventView`, with its stored `frame` in
/// base64); resume with `Last-Event-ID` (or `?after=`). A comment line (`:heartbeat`) comes
/// after 15 s without events. Auditors and subscribers receive every event, care roles those of
/// their own patients.
///
/// Every subscriber also receives the log's signed checkpoints as `event: checkpoint`, whose
/// `data` is a `CheckpointEventView` (tree size, root in hex and base64, the whole signed note):
/// the latest once when it connects, then each new one as it is signed. A checkpoint event has
/// no `id`, so it leaves `Last-Event-ID` at the last recorded event's position; it is not
/// ordered with the recorded events (its `tree_size` says which positions it covers).
///
/// A position after the ledger's head is refused (416, naming the head) rather than waited
/// for. One token may have a limited number of streams open at once (8 unless the server is
/// configured otherwise; 429 beyond it).
#[utoipa::path(get, path = "/events/stream", tag = "events", security(("bearer" = [])),
    params(
        PageQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "the last position received; the stream resumes after it"),
    ),
    responses(
        (status = 200, description = "the stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in that patient's care team", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 416, description = "`after` or `Last-Event-ID` is beyond the ledger's head (code `after_beyond_head`; `ledger_head_position` names the head)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "this token has the most streams open that one token may have (code `too_many_streams`), or sent too many requests (`rate_limited`); `Retry-After` says when to retry", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    state.app.may_read_log(&caller)?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::Malformed("Last-Event-ID must be a position".into()))
        })
        .transpose()?;
    let after = match last_event_id {
        Some(id) => parse_u64("Last-Event-ID", Some(id), 0)?,
        None => q.after(),
    };
    let patient = q.patient()?;
    if let (Some(p), AccessRole::Care(_)) = (&patient, caller.role) {
        state.app.may_read(&caller, p)?;
    }
    // A position beyond the head is not one this ledger gave: waiting for it would hide the
    // client's mistake (a position of another ledger, or of this one before a restore) and
    // skip every event up to it once the ledger gets there.
    // The ledger's head, not only the channel's: an append acknowledged a moment ago may not
    // have reached the channel yet.
    let head = state
        .app
        .ledger
        .head()
        .position
        .max(*state.app.durable().borrow());
    if after > head {
        return Err(ApiError::BeyondHead { after, head });
    }
    let slot = state.guards.open_stream(&caller.id)?;
    // Followed before the latest is read, so that none signed in between is missed; one
    // already sent is not sent again (a checkpoint's size only grows).
    let checkpoints = state.app.feed.checkpoints();
    let app = state.app.clone();
    let latest = blocking(move || Ok(app.checkpoint()?)).await?;
    let first = latest.and_then(|note| state.app.feed.render_checkpoint(&note));
    let mut subscription = Subscription::new(state, caller, patient, after, checkpoints);
    subscription.slot = Some(slot);
    if let Some(first) = first {
        subscription.checkpoint_sent = first.size;
        subscription.first = Some(first.frame);
    }
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let chunk = sub.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), sub))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// One SSE subscriber's place in the stream.
struct Subscription {
    state: AppState,
    caller: RegisteredActor,
    patient: Option<PatientId>,
    /// The last position sent (or skipped as not the caller's to see).
    after: u64,
    last_sent: tokio::time::Instant,
    /// Fires [`HEARTBEAT`] after the last write. Re-armed only when it fires, so a busy stream
    /// does not touch the runtime's timers on every write.
    heartbeat: std::pin::Pin<Box<tokio::time::Sleep>>,
    fed: watch::Receiver<u64>,
    durable: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    /// The checkpoints signed while the stream is open.
    checkpoints: watch::Receiver<Option<Arc<CheckpointItem>>>,
    /// The tree size of the last checkpoint sent.
    checkpoint_sent: u64,
    /// The latest checkpoint when the stream opened, sent first.
    first: Option<Bytes>,
    /// This stream's place among its token's open streams, given back when it ends.
    slot: Option<StreamSlot>,
}

impl Subscription {
    /// A subscription of `caller` to the events after `after` (of `patient` only, if given).
    fn new(
        state: AppState,
        caller: RegisteredActor,
        patient: Option<PatientId>,
        after: u64,
        checkpoints: watch::Receiver<Option<Arc<CheckpointItem>>>,
    ) -> Self {
        Subscription {
            checkpoints,
            checkpoint_sent: 0,
            first: None,
            slot: None,
            fed: state.app.feed.subscribe(),
            shutdown: state.app.shutdown(),
            durable: state.app.durable(),
            state,
            caller,
            patient,
            after,
            last_sent: tokio::time::Instant::now(),
            heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
        }
    }

    /// The next bytes to send: the events visible since the last call, in one chunk, or a
    /// heartbeat after [`HEARTBEAT`] of silence; `None` ends the stream (shutdown, or the ledger
    /// could not be read).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(self.sent(first));
        }
        loop {
            // Also when events flow that this subscriber does not see (another patient's).
            if tokio::time::Instant::now() >= self.last_sent + HEARTBEAT {
                return Some(self.heartbeat());
            }
            if let Some(checkpoint) = self.new_checkpoint() {
                return Some(self.sent(checkpoint));
            }
            let items = self
                .state
                .app
                .feed
                .after(&self.state.app.ledger, self.after)
                .await?;
            if items.is_empty() {
                let more = wait_for_more(
                    &self.state.app.feed,
                    &mut self.fed,
                    &mut self.durable,
                    &mut self.shutdown,
                    self.after,
                );
                tokio::select! {
                    more = more => {
                        if !more {
                            return None;
                        }
                    }
                    // A new checkpoint; the loop sends it. Closed only with the app, when the
                    // shutdown ends the stream.
                    Ok(()) = self.checkpoints.changed() => {}
                    // Armed at the last heartbeat; the check above sends the next one when
                    // the quiet period since the last write is over.
                    () = &mut self.heartbeat => {
                        self.heartbeat.as_mut().reset(self.last_sent + HEARTBEAT);
                    }
                }
                continue;
            }
            self.after = items.last().map_or(self.after, |e| e.position);
            self.state
                .app
                .judges_events_through(&self.caller, self.after)
                .await;
            let shown: Vec<&Arc<FeedItem>> = items
                .iter()
                .filter(|e| self.patient.as_ref().is_none_or(|p| *p == e.patient))
                .filter(|e| self.state.app.sees_events_of(&self.caller, &e.patient))
                .collect();
            let chunk = match shown.as_slice() {
                [] => continue,
                [one] => one.frame.clone(),
                many => Bytes::from(
                    many.iter()
                        .map(|e| &e.frame[..])
                        .collect::<Vec<_>>()
                        .concat(),
                ),
            };
            return Some(self.sent(chunk));
        }
    }

    /// A checkpoint signed since the last one sent, if any. Told by its size, not by the
    /// channel's changed mark, which the wait for more (`changed()`) clears.
    fn new_checkpoint(&mut self) -> Option<Bytes> {
        let item = self.checkpoints.borrow_and_update().clone()?;
        if item.size <= self.checkpoint_sent {
            return None;
        }
        self.checkpoint_sent = item.size;
        Some(item.frame.clone())
    }

    fn sent(&mut self, chunk: Bytes) -> Bytes {
        self.last_sent = tokio::time::Instant::now();
        chunk
    }

    fn heartbeat(&mut self) -> Bytes {
        let chunk = self.sent(Bytes::from_static(b":heartbeat\n\n"));
        self.heartbeat.as_mut().reset(self.last_sent + HEARTBEAT);
        chunk
    }
}

/// Waits until something after `after` may be there; false when the server shuts down.
async fn wait_for_more(
    feed: &Feed,
    fed: &mut watch::Receiver<u64>,
    durable: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
    after: u64,
) -> bool {
    if *shutdown.borrow_and_update() {
        return false;
    }
    let changed = if feed.is_active() {
        if *fed.borrow_and_update() > after {
            return true;
        }
        fed.changed()
    } else {
        if *durable.borrow_and_update() > after {
            return true;
        }
        durable.changed()
    };
    tokio::select! {
        changed = changed => changed.is_ok(),
        _ = shutdown.changed() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careledger_core::ids::ActorId;
    use careledger_core::{AppendRequest, ExpectedRevision};

    /// The state of a server on an empty ledger in `dir`.
    fn empty_server(dir: &std::path::Path) -> AppState {
        let data = careledger_app::DataDir::open(dir).unwrap_or_else(|e| panic!("{e}"));
        AppState::start(&data)
    }

    /// The next chunk is a heartbeat, one quiet period after `since` (the last write).
    async fn expect_heartbeat(sub: &mut Subscription, since: tokio::time::Instant) {
        assert_eq!(
            sub.next_chunk().await.as_deref(),
            Some(&b":heartbeat\n\n"[..])
        );
        let quiet = since.elapsed();
        assert!(
            quiet >= HEARTBEAT && quiet < HEARTBEAT + Duration::from_secs(1),
            "heartbeat {quiet:?} after the last write"
        );
    }

    fn subscription(state: AppState) -> Subscription {
        let caller = RegisteredActor::new(
            ActorId::parse("gp-system").unwrap_or_else(|e| panic!("{e}")),
            careledger_core::ids::Text::new("GP system").unwrap_or_else(|e| panic!("{e}")),
            AccessRole::Subscriber,
        )
        .scoped(careledger_app::actors::SubscriberScope::All);
        let checkpoints = state.app.feed.checkpoints();
        Subscription::new(state, caller, None, 0, checkpoints)
    }

    /// A subscriber that follows one patient gets its heartbeat while other patients' events
    /// flow past it: they keep its stream busy but send it nothing.
    #[tokio::test(start_paused = true)]
    async fn a_filtered_stream_gets_heartbeats_while_events_it_does_not_see_flow() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = empty_server(dir.path());
        let mut sub = subscription(state.clone());
        sub.patient = Some(PatientId::parse("patient-2").unwrap_or_else(|e| panic!("{e}")));

        let ledger = state.app.ledger.clone();
        let writer = tokio::spawn(async move {
            for i in 0..8 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let ledger = ledger.clone();
                let request = if i == 0 { founding() } else { note() };
                tokio::task::spawn_blocking(move || ledger.append(request))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });
        let started = tokio::time::Instant::now();
        expect_heartbeat(&mut sub, started).await;
        assert!(
            sub.after >= 4,
            "the other patient's events were read and passed over"
        );
        writer.await.unwrap_or_else(|e| panic!("{e}"));
    }

    fn note() -> AppendRequest {
        use careledger_core::event::{Command, Note, NoteKind};
        use careledger_core::ids::Text;
        use careledger_core::Submission;
        let text = |t: &str| Text::new(t).unwrap_or_else(|e| panic!("{e}"));
        let mut request = founding();
        request.expected = ExpectedRevision::Any;
        request.submissions = vec![Submission {
            command: Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: text("CVRM follow-up"),
                body: text("Blood pressure at target."),
            }),
            occurred_at: None,
            reason: text("quarterly consultation"),
        }];
        request
    }

    fn founding() -> AppendRequest {
        use careledger_core::event::{Command, Member};
        use careledger_core::ids::Text;
        use careledger_core::role::{Lead, Practitioner, Role};
        use careledger_core::{Actor, Submission};
        let text = |t: &str| Text::new(t).unwrap_or_else(|e| panic!("{e}"));
        let gp = Actor {
            id: ActorId::parse("agb-01012345").unwrap_or_else(|e| panic!("{e}")),
            role: Role::Gp,
            name: text("Dr. J. de Vries"),
            organisation: None,
        };
        AppendRequest {
            patient: PatientId::parse("patient-1").unwrap_or_else(|e| panic!("{e}")),
            expected: ExpectedRevision::NoStream,
            submissions: vec![Submission {
                command: Command::AddCareTeamMember(Member {
                    actor: gp.id.clone(),
                    name: gp.name.clone(),
                    agb: None,
                    role: Role::Gp,
                    lead: Lead::Cvrm,
                    practitioner: Practitioner::Main,
                }),
                occurred_at: None,
                reason: text("takes on cardiovascular risk management"),
            }],
            actor: gp,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// The heartbeat timer is armed once per quiet period, not per write: an idle stream still
    /// gets its heartbeat after exactly [`HEARTBEAT`] of silence, and not before.
    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_gets_a_heartbeat_after_the_quiet_period_and_not_before() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = empty_server(dir.path());
        let mut sub = subscription(state.clone());

        let started = tokio::time::Instant::now();
        let early =
            tokio::time::timeout(HEARTBEAT - Duration::from_secs(1), sub.next_chunk()).await;
        assert!(
            early.is_err(),
            "nothing is sent before the quiet period ends"
        );
        expect_heartbeat(&mut sub, started).await;

        // An event part-way through the next quiet period goes out at once and starts it anew:
        // the timer that fires at the old deadline is re-armed, not answered with a heartbeat.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ledger = state.app.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.append(founding()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let event = sub.next_chunk().await.unwrap_or_default();
        assert!(event.starts_with(b"id: 1\n"), "{event:?}");
        let sent = tokio::time::Instant::now();
        expect_heartbeat(&mut sub, sent).await;
        state.begin_shutdown();
        assert_eq!(sub.next_chunk().await, None);
    }

    /// A checkpoint signed while a subscriber waits for events goes out at once, without an
    /// id, and only once.
    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_signed_while_a_subscriber_waits_goes_out_once_without_an_id() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = empty_server(dir.path());
        let ledger = state.app.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.append(founding()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut sub = subscription(state.clone());
        let event = sub.next_chunk().await.unwrap_or_default();
        assert!(event.starts_with(b"id: 1\n"), "{event:?}");

        let key = careledger_core::checkpoint::LogKey::from_seed("sse.example/log", &[3; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("checkpoint-for-the-test");
        let note = careledger_core::checkpoint::issue(&state.app.ledger, &key, &file, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let feed = state.app.feed.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            feed.publish_checkpoint(&note);
            // Again: the same size is not sent twice.
            feed.publish_checkpoint(&note);
        });
        let chunk = sub.next_chunk().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&chunk);
        assert!(text.starts_with("event: checkpoint\ndata: {"), "{text}");
        assert!(!text.contains("\nid:"), "no id: {text}");
        assert!(text.contains("\"tree_size\":1"), "{text}");
        // Nothing more until the heartbeat.
        let since = tokio::time::Instant::now();
        expect_heartbeat(&mut sub, since).await;
    }
}

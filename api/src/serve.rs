//! Serving the router on a listener until shutdown: the accept loop, each connection's limits,
//! TLS, and the graceful end.
//!
//! The loop is ours rather than `axum::serve`'s so that a connection has a deadline for its
//! request head ([`Limits::header_read_timeout`], which in hyper also bounds the idle time of a
//! kept-alive connection between requests: a client that sends nothing, or one header line a
//! second, is closed), so that the open connections are capped ([`Limits::max_connections`]),
//! and so that a TLS handshake gets the same deadline. An SSE stream is not idle: its request
//! is in flight as long as it is open, and hyper reads no next head meanwhile.
//!
//! At the cap, the oldest connection without a request in flight (idle between requests, or
//! still sending its head or its TLS handshake) is closed to make room; when every connection
//! has a request in flight, the new one is closed at once. So idle and slow clients cannot keep
//! `/health` or anyone else out, and the process never runs out of descriptors: the cap is
//! lowered, when need be, below the process's descriptor limit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::router::app;
use crate::state::AppState;

/// How the server talks to its clients.
#[derive(Clone)]
#[non_exhaustive]
pub enum Transport {
    /// Plain HTTP/1.1: on loopback, or behind a proxy that terminates TLS.
    Plain,
    /// HTTPS with this rustls configuration ([`crate::tls::server_config`]); answers carry
    /// `Strict-Transport-Security`.
    Tls(Arc<rustls::ServerConfig>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain => f.write_str("Plain"),
            Transport::Tls(_) => f.write_str("Tls"),
        }
    }
}

/// How long a new connection waits for an evicted one to close before it is closed itself.
const EVICTION_WAIT: Duration = Duration::from_millis(200);
/// Pause after an accept error, so that running out of descriptors does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Descriptors kept for everything but connections (the stores' files, the anchor, the log
/// key, the checkpoint, the listener, blocking reads).
const RESERVED_DESCRIPTORS: usize = 64;

/// Serves plain HTTP on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish and ends the SSE streams; the feed runs alongside. The caller finishes the
/// application afterwards ([`careledger_app::App::finish`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Transport::Plain, shutdown).await
}

/// [`serve`] over `transport`.
pub async fn serve_with(
    listener: TcpListener,
    mut state: AppState,
    transport: Transport,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let feed = {
        let app = state.app.clone();
        tokio::spawn(async move { app.run_feed().await })
    };
    let tls = match transport {
        Transport::Plain => None,
        Transport::Tls(config) => {
            state.shared_mut().hsts = true;
            Some(tokio_rustls::TlsAcceptor::from(config))
        }
    };
    let limits = state.limits().clone();
    let cap = connection_cap(limits.max_connections);
    let connections = Arc::new(Connections::new(cap));
    let (closing_tx, closing) = watch::channel(false);
    let shared = Arc::new(Shared {
        router: app(state.clone()),
        tls,
        header_read_timeout: limits.header_read_timeout,
        closing,
    });
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        state.begin_shutdown();
    };
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(&e, &connections).await;
                continue;
            }
        };
        let Some(permit) = connections.admit().await else {
            tracing::debug!(%peer, "closed a new connection: every connection has a request in flight");
            continue;
        };
        // Small writes (an SSE event, a 201) go out at once: with Nagle's algorithm a write
        // waits for the ACK of the one before, which the client may delay by 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        let slot = connections.register();
        let shared = Arc::clone(&shared);
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            connection(tcp, peer, &shared, &connections, &slot).await;
            connections.unregister(&slot);
            drop(permit);
        });
    }
    drop(listener);
    closing_tx.send_replace(true);
    // Every connection gives its permit back when it has ended.
    let _all = connections.permits.acquire_many(cap_u32(cap)).await;
    feed.abort();
    Ok(())
}

/// What every connection task shares.
struct Shared {
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_read_timeout: Duration,
    /// Turns true at shutdown: connections finish their request in flight and close.
    closing: watch::Receiver<bool>,
}

/// Serves one connection until it closes, is evicted, or the server shuts down.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    connections: &Connections,
    slot: &Arc<Slot>,
) {
    let Some(tls) = &shared.tls else {
        http(tcp, peer, shared, connections, slot).await;
        return;
    };
    let handshake = tokio::time::timeout(shared.header_read_timeout, tls.accept(tcp));
    let mut closing = shared.closing.clone();
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not done within the header read timeout");
                return;
            }
        },
        () = slot.evict.notified() => return,
        _ = closing.wait_for(|c| *c) => return,
    };
    http(stream, peer, shared, connections, slot).await;
}

/// HTTP/1.1 on an established stream.
async fn http<I>(
    io: I,
    peer: SocketAddr,
    shared: &Shared,
    connections: &Connections,
    slot: &Arc<Slot>,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let router = shared.router.clone();
    let busy = Arc::clone(slot);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = InFlight::start(&busy);
        let router = router.clone();
        async move {
            let response =
                tower::ServiceExt::oneshot(router, request.map(axum::body::Body::new)).await?;
            // The request counts as in flight until its body has gone out (or the client
            // left): an SSE stream is never idle.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                    let _in_flight = &in_flight;
                    frame
                }))
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = shared.closing.clone();
    let mut graceful = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            // Chosen for eviction while idle; a request that arrived meanwhile keeps it open,
            // and it can be chosen again once idle.
            () = slot.evict.notified(), if !graceful => {
                if slot.in_flight.load(Ordering::Acquire) == 0 {
                    tracing::debug!(%peer, "closed an idle connection to make room");
                    return;
                }
                connections.reinstate(slot);
            }
            _ = closing.wait_for(|c| *c), if !graceful => {
                graceful = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Accept failed: out of descriptors (close the longest-idle connection and pause, so that the
/// loop does not spin), or a connection that went before it was accepted.
async fn accept_failed(e: &std::io::Error, connections: &Connections) {
    let exhausted = matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if exhausted {
        tracing::warn!(error = %e, "accepting a connection failed; closing an idle one and pausing");
        connections.evict_idle();
    } else {
        tracing::debug!(error = %e, "accepting a connection failed");
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// The cap on open connections: `wanted`, lowered below the process's descriptor limit (each
/// connection holds one descriptor) where that is known.
fn connection_cap(wanted: usize) -> usize {
    let wanted = wanted.max(1);
    let Some(limit) = descriptor_limit() else {
        return wanted;
    };
    let allowed = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if allowed < wanted {
        tracing::warn!(
            wanted,
            allowed,
            descriptor_limit = limit,
            "the process's descriptor limit allows fewer connections than --max-connections; \
             serving at most {allowed} (raise `ulimit -n` for more)"
        );
        return allowed;
    }
    wanted
}

/// The soft limit on open descriptors, from `/proc/self/limits` (Linux); `None` elsewhere or
/// when unlimited.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn cap_u32(cap: usize) -> u32 {
    u32::try_from(cap).unwrap_or(u32::MAX)
}

/// The open connections: a permit each, and the order they came in, to find the oldest one
/// without a request in flight.
struct Connections {
    permits: Arc<Semaphore>,
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next: AtomicU64,
}

/// One open connection.
struct Slot {
    id: u64,
    /// Requests in flight (their answer not yet sent in full).
    in_flight: AtomicUsize,
    /// Told when the connection is closed to make room.
    evict: Notify,
}

/// A request in flight on a connection, ended when dropped.
struct InFlight(Arc<Slot>);

impl InFlight {
    fn start(slot: &Arc<Slot>) -> InFlight {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(slot))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    fn new(cap: usize) -> Self {
        Connections {
            permits: Arc::new(Semaphore::new(cap)),
            slots: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// A permit for one more connection: at once while under the cap; at the cap, after
    /// closing the oldest connection without a request in flight; `None` when every
    /// connection has a request in flight (or the evicted one did not close in time).
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(permit);
        }
        if !self.evict_idle() {
            return None;
        }
        tokio::time::timeout(EVICTION_WAIT, Arc::clone(&self.permits).acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Tells the oldest connection without a request in flight to close; false if there is
    /// none. It leaves the list at once, so that the next eviction picks another.
    fn evict_idle(&self) -> bool {
        let mut slots = self.slots.lock();
        let idle = slots
            .values()
            .find(|s| s.in_flight.load(Ordering::Acquire) == 0)
            .map(|s| s.id);
        let Some(slot) = idle.and_then(|id| slots.remove(&id)) else {
            return false;
        };
        slot.evict.notify_one();
        true
    }

    fn register(&self) -> Arc<Slot> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            in_flight: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        self.slots.lock().insert(id, Arc::clone(&slot));
        slot
    }

    /// Puts back a connection chosen for eviction that had a request in flight by then.
    fn reinstate(&self, slot: &Arc<Slot>) {
        self.slots.lock().insert(slot.id, Arc::clone(slot));
    }

    fn unregister(&self, slot: &Slot) {
        self.slots.lock().remove(&slot.id);
    }
}

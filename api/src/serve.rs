//! Serving a router on a listener until shutdown.

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::router::app;
use crate::state::AppState;

/// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish; the
/// feed runs alongside. The caller finishes the application afterwards ([`careledger_app::App::finish`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let for_shutdown = state.clone();
    let feed = {
        let app = state.app.clone();
        tokio::spawn(async move { app.run_feed().await })
    };
    let router = app(state);
    // Small writes (an SSE event, a 201) go out at once: with Nagle's algorithm a write waits
    // for the ACK of the one before, which the client may delay by 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        for_shutdown.begin_shutdown();
    })
    .await?;
    feed.abort();
    Ok(())
}

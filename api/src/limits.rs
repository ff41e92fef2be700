//! What one server and one token may take: open connections, the time to send a request's
//! head, requests per second, open streams, and the one full-chain verification at a time.
//!
//! [`Limits`] is the configuration (`careledger serve`'s flags); [`Guards`] holds what is in
//! use now and refuses, with a 429 naming the limit and when to retry, what goes beyond it.
//! The per-token limits count by the authenticated actor (one token per actor), so that one
//! system cannot starve the others; they are set far above what a GP practice or a hospital
//! system sends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use careledger_core::ids::ActorId;

use crate::error::ApiError;

/// The limits of one server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once; beyond it the connection that has waited longest for its
    /// next request is closed to make room, or, when every connection is busy, the new one is
    /// closed at once. Lowered to what the process's descriptor limit allows.
    pub max_connections: usize,
    /// Time a connection has to send a request's head, and the longest a kept-alive connection
    /// may stay idle between requests (closed after it, without an answer).
    pub header_read_timeout: Duration,
    /// Requests per token; `None`: no limit.
    pub rate: Option<Rate>,
    /// Open `/events/stream` connections per token.
    pub streams_per_token: u32,
    /// How long a `/verify` (a full-chain scan) may run before it is stopped with 408.
    pub verify_timeout: Duration,
}

/// A token bucket: `per_second` requests on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second on average.
    pub per_second: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

/// Default open connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default time to send a request's head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default requests per second per token.
pub const DEFAULT_RATE_PER_SECOND: u32 = 50;
/// Default burst per token.
pub const DEFAULT_RATE_BURST: u32 = 200;
/// Default open streams per token.
pub const DEFAULT_STREAMS_PER_TOKEN: u32 = 8;
/// Default time limit of `/verify`: at the measured 1.3M events/s, a scan of 100M events.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(300);
/// What a second `/verify` is told to wait before it tries again.
const VERIFY_RETRY_AFTER_SECS: u64 = 10;
/// Buckets kept at most; beyond it the full ones (tokens idle for a while) are forgotten.
const MAX_BUCKETS: usize = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            rate: Some(Rate {
                per_second: DEFAULT_RATE_PER_SECOND,
                burst: DEFAULT_RATE_BURST,
            }),
            streams_per_token: DEFAULT_STREAMS_PER_TOKEN,
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
        }
    }
}

impl Limits {
    /// No per-token limits and room for many connections: for a load generator that drives
    /// its own server with one token.
    pub fn unlimited() -> Self {
        Limits {
            max_connections: 65_536,
            rate: None,
            streams_per_token: u32::MAX,
            ..Limits::default()
        }
    }
}

/// What is in use now, against [`Limits`].
#[derive(Debug)]
pub(crate) struct Guards {
    limits: Limits,
    buckets: Mutex<HashMap<ActorId, Bucket>>,
    streams: Mutex<HashMap<ActorId, u32>>,
    verifying: AtomicBool,
}

/// One token's bucket: `tokens` left at `at`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Guards {
    pub(crate) fn new(limits: Limits) -> Self {
        Guards {
            limits,
            buckets: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            verifying: AtomicBool::new(false),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one request of `actor`, or refuses it (429) when their bucket is empty.
    pub(crate) fn admit(&self, actor: &ActorId) -> Result<(), ApiError> {
        let Some(rate) = self.limits.rate else {
            return Ok(());
        };
        let per_second = f64::from(rate.per_second.max(1));
        let burst = f64::from(rate.burst.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(actor) {
            buckets.retain(|_, b| b.refilled(now, per_second, burst) < burst);
        }
        let bucket = buckets.entry(actor.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = bucket.refilled(now, per_second, burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        // Whole seconds until one request is allowed again, at least one.
        let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0);
        let retry_after_secs = wait as u64;
        Err(ApiError::TooManyRequests {
            code: "rate_limited".into(),
            message: format!(
                "this token sent more than {} requests per second on average (bursts of up to {}); \
                 retry after {retry_after_secs} s, and spread requests out",
                rate.per_second, rate.burst
            ),
            retry_after_secs,
        })
    }

    /// A place for one more open stream of `actor`, or a 429 naming the cap.
    pub(crate) fn open_stream(self: &Arc<Self>, actor: &ActorId) -> Result<StreamSlot, ApiError> {
        let cap = self.limits.streams_per_token;
        let mut streams = self.streams.lock();
        let open = streams.entry(actor.clone()).or_default();
        if *open >= cap {
            return Err(ApiError::TooManyRequests {
                code: "too_many_streams".into(),
                message: format!(
                    "this token has {open} event streams open, the most one token may have is \
                     {cap}; close one (one stream carries every event the token may see, \
                     filtered by ?patient= if need be) and retry"
                ),
                retry_after_secs: 1,
            });
        }
        *open += 1;
        Ok(StreamSlot {
            guards: Arc::clone(self),
            actor: actor.clone(),
        })
    }

    /// The one verification running, or a 429 while another runs.
    pub(crate) fn start_verify(self: &Arc<Self>) -> Result<VerifySlot, ApiError> {
        if self.verifying.swap(true, Ordering::AcqRel) {
            return Err(ApiError::TooManyRequests {
                code: "verify_in_progress".into(),
                message: format!(
                    "a verification of the whole chain is running; one runs at a time, retry \
                     after {VERIFY_RETRY_AFTER_SECS} s"
                ),
                retry_after_secs: VERIFY_RETRY_AFTER_SECS,
            });
        }
        Ok(VerifySlot {
            guards: Arc::clone(self),
        })
    }

    /// Open streams of `actor` now.
    #[cfg(test)]
    pub(crate) fn streams_of(&self, actor: &ActorId) -> u32 {
        self.streams.lock().get(actor).copied().unwrap_or(0)
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_second: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_second).min(burst)
    }
}

/// One open stream of an actor, given back when dropped (the stream ended or its client went).
#[derive(Debug)]
pub(crate) struct StreamSlot {
    guards: Arc<Guards>,
    actor: ActorId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.guards.streams.lock();
        if let Some(open) = streams.get_mut(&self.actor) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.actor);
            }
        }
    }
}

/// The running verification, ended when dropped: when the scan has returned, not when its
/// request was answered, so that a timed-out scan still counts until it has stopped.
#[derive(Debug)]
pub(crate) struct VerifySlot {
    guards: Arc<Guards>,
}

impl Drop for VerifySlot {
    fn drop(&mut self) {
        self.guards.verifying.store(false, Ordering::Release);
    }
}

/// Sets its flag when dropped: a request's future dropped by its time limit, or by its client
/// going away, tells the blocking work it started to stop.
#[derive(Debug)]
pub(crate) struct CancelOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: &str) -> ActorId {
        ActorId::parse(id).unwrap()
    }

    #[test]
    fn a_token_past_its_burst_is_refused_with_when_to_retry_and_others_are_not() {
        let guards = Guards::new(Limits {
            rate: Some(Rate {
                per_second: 1,
                burst: 3,
            }),
            ..Limits::default()
        });
        let busy = actor("gp-system");
        for _ in 0..3 {
            guards.admit(&busy).unwrap();
        }
        match guards.admit(&busy) {
            Err(ApiError::TooManyRequests {
                code,
                retry_after_secs,
                message,
            }) => {
                assert_eq!(code, "rate_limited");
                assert_eq!(retry_after_secs, 1);
                assert!(message.contains("1 requests per second"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        guards.admit(&actor("hospital-system")).unwrap();
    }

    #[test]
    fn stream_slots_are_given_back_when_dropped() {
        let guards = Arc::new(Guards::new(Limits {
            streams_per_token: 2,
            ..Limits::default()
        }));
        let who = actor("feed-1");
        let first = guards.open_stream(&who).unwrap();
        let _second = guards.open_stream(&who).unwrap();
        assert!(guards.open_stream(&who).is_err());
        drop(first);
        assert_eq!(guards.streams_of(&who), 1);
        let _third = guards.open_stream(&who).unwrap();
    }

    #[test]
    fn one_verification_at_a_time() {
        let guards = Arc::new(Guards::new(Limits::default()));
        let running = guards.start_verify().unwrap();
        assert!(guards.start_verify().is_err());
        drop(running);
        guards.start_verify().unwrap();
    }
}

//! The feed: each newly durable event read once from the ledger, rendered once (by the renderer
//! the server gives it, e.g. as a Server-Sent Event) and shared by every subscriber, in a window
//! of recent events; a subscriber further behind reads the ledger by position.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;

use careledger_core::ids::PatientId;
use careledger_core::{Ledger, RecordedEvent};

/// Renders one durable event into the bytes every subscriber receives.
pub type Render = fn(&RecordedEvent) -> Bytes;

/// A durable event rendered once for every subscriber.
pub struct FeedItem {
    /// The event's position.
    pub position: u64,
    /// Its patient, for the subscribers' filters and permissions.
    pub patient: PatientId,
    /// The rendered event.
    pub frame: Bytes,
}

impl FeedItem {
    /// Renders `event`.
    pub fn of(event: &RecordedEvent, render: Render) -> FeedItem {
        FeedItem {
            position: event.position,
            patient: event.record.patient.clone(),
            frame: render(event),
        }
    }
}

/// Recently durable events, read and rendered once by one task ([`Feed::run`]).
pub struct Feed {
    recent: RwLock<VecDeque<Arc<FeedItem>>>,
    fed: watch::Sender<u64>,
    active: AtomicBool,
    render: Render,
}

/// Events the feed keeps for subscribers that are a little behind.
const FEED_CAPACITY: usize = 8192;

/// Items handed out at once.
const PAGE: usize = 256;

/// Newly durable events the feed reads on its own task; a larger backlog (start-up, a burst) is
/// read on a blocking thread.
const DIRECT_READ: u64 = 64;

impl Feed {
    /// An empty feed at `position`, rendering with `render`.
    pub fn new(position: u64, render: Render) -> Self {
        Feed {
            recent: RwLock::new(VecDeque::new()),
            fed: watch::channel(position).0,
            active: AtomicBool::new(false),
            render,
        }
    }

    /// Follows the position the feed has reached.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.fed.subscribe()
    }

    /// True while [`Feed::run`] keeps the feed current.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The position the feed has reached.
    pub fn position(&self) -> u64 {
        *self.fed.borrow()
    }

    /// The items after `after`, if the feed holds `after + 1` (or nothing newer exists yet).
    fn recent_after(&self, after: u64) -> Option<Vec<Arc<FeedItem>>> {
        let recent = self.recent.read();
        let first = recent.front()?.position;
        let last = recent.back()?.position;
        if after + 1 < first {
            return None;
        }
        if after >= last {
            return Some(Vec::new());
        }
        let start = (after + 1 - first) as usize;
        Some(recent.range(start..).take(PAGE).cloned().collect())
    }

    /// The items after `after`: from the feed when it holds them, otherwise read from `ledger`;
    /// `None` when the ledger cannot be read.
    pub async fn after(&self, ledger: &Arc<Ledger>, after: u64) -> Option<Vec<Arc<FeedItem>>> {
        if self.is_active() {
            if let Some(items) = self.recent_after(after) {
                if !items.is_empty() || self.position() <= after {
                    return Some(items);
                }
            }
        }
        let ledger = ledger.clone();
        let events = tokio::task::spawn_blocking(move || ledger.read_all(after, PAGE))
            .await
            .ok()?
            .ok()?;
        let render = self.render;
        Some(
            events
                .iter()
                .map(|e| Arc::new(FeedItem::of(e, render)))
                .collect(),
        )
    }

    /// Reads each newly durable event once, renders it, and publishes it to the subscribers,
    /// until `durable` closes or the ledger cannot be read.
    pub async fn run(&self, ledger: Arc<Ledger>, mut durable: watch::Receiver<u64>) {
        let mut fed = ledger.head().position;
        self.fed.send_replace(fed);
        self.active.store(true, Ordering::Release);
        loop {
            while *durable.borrow_and_update() > fed {
                let backlog = *durable.borrow() - fed;
                let read = if backlog <= DIRECT_READ {
                    // Events this process committed moments ago are in sled's cache: reading
                    // them takes microseconds, less than a hop to a blocking thread and back,
                    // which every subscriber would wait for.
                    Ok(ledger.read_all(fed, DIRECT_READ as usize))
                } else {
                    let ledger = ledger.clone();
                    let from = fed;
                    tokio::task::spawn_blocking(move || ledger.read_all(from, 1024)).await
                };
                let Ok(Ok(events)) = read else {
                    self.active.store(false, Ordering::Release);
                    return;
                };
                if events.is_empty() {
                    break;
                }
                let items: Vec<Arc<FeedItem>> = events
                    .iter()
                    .map(|e| Arc::new(FeedItem::of(e, self.render)))
                    .collect();
                fed = items.last().map_or(fed, |i| i.position);
                {
                    let mut recent = self.recent.write();
                    recent.extend(items);
                    while recent.len() > FEED_CAPACITY {
                        recent.pop_front();
                    }
                }
                self.fed.send_replace(fed);
            }
            if durable.changed().await.is_err() {
                return;
            }
        }
    }
}

//! The feed: each newly durable event read once from the ledger with its stored frame, rendered
//! once (by the renderer the server gives it, e.g. as a Server-Sent Event) and shared by every
//! subscriber, in a window of recent events bounded in count and in bytes; a subscriber further
//! behind reads the ledger by position. The frames are dropped once rendered: the window holds
//! only the rendered bytes.
//!
//! Each checkpoint the checkpointer signs is rendered once too ([`Feed::publish_checkpoint`])
//! and handed to every subscriber ([`Feed::checkpoints`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;

use careledger_core::checkpoint::Checkpoint;
use careledger_core::ids::PatientId;
use careledger_core::merkle::TreeHash;
use careledger_core::note::Note;
use careledger_core::{FramedEvent, Ledger};

/// How the server renders what its subscribers receive.
#[derive(Clone, Copy, Debug)]
pub struct Render {
    /// One durable event with its stored frame.
    pub event: fn(&FramedEvent) -> Bytes,
    /// One signed checkpoint.
    pub checkpoint: fn(&SignedCheckpoint<'_>) -> Bytes,
}

/// A signed checkpoint's parts, for rendering: the body's origin, size and root, and the whole
/// signed note (with the cosignatures it carries).
#[derive(Clone, Copy, Debug)]
pub struct SignedCheckpoint<'a> {
    /// The log's origin.
    pub origin: &'a str,
    /// The tree size: positions 1 to `size`.
    pub size: u64,
    /// The tree's root hash.
    pub root: TreeHash,
    /// The signed note as the log stores it.
    pub note: &'a str,
}

/// A signed checkpoint rendered once for every subscriber.
#[derive(Debug)]
pub struct CheckpointItem {
    /// Its tree size.
    pub size: u64,
    /// The rendered checkpoint.
    pub frame: Bytes,
}

impl CheckpointItem {
    /// Renders the signed note `note`; `None` when it is not a signed checkpoint.
    pub fn of(note: &str, render: Render) -> Option<CheckpointItem> {
        let parsed = Note::parse(note).ok()?;
        let (checkpoint, _) = Checkpoint::parse_text(parsed.text()).ok()?;
        let signed = SignedCheckpoint {
            origin: checkpoint.origin(),
            size: checkpoint.size(),
            root: checkpoint.root(),
            note,
        };
        Some(CheckpointItem {
            size: checkpoint.size(),
            frame: (render.checkpoint)(&signed),
        })
    }
}

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
    pub fn of(event: &FramedEvent, render: Render) -> FeedItem {
        FeedItem {
            position: event.event.position,
            patient: event.event.record.patient.clone(),
            frame: (render.event)(event),
        }
    }
}

/// Recently durable events, read and rendered once by one task ([`Feed::run`]), and the latest
/// checkpoint.
pub struct Feed {
    recent: RwLock<Recent>,
    fed: watch::Sender<u64>,
    active: AtomicBool,
    render: Render,
    checkpoints: watch::Sender<Option<Arc<CheckpointItem>>>,
}

/// The window of recent events and the bytes their renderings take.
#[derive(Default)]
struct Recent {
    items: VecDeque<Arc<FeedItem>>,
    bytes: usize,
}

/// Events the feed keeps for subscribers that are a little behind.
const FEED_CAPACITY: usize = 8192;

/// Bytes of rendered events the feed keeps at most: an event with its frame in base64 renders
/// to 1 to 2 KiB, so the window is bounded by [`FEED_CAPACITY`] for ordinary events, and by
/// this for large ones (long notes and letters).
const FEED_BYTES: usize = 24 << 20;

/// Items handed out at once.
const PAGE: usize = 256;

/// Newly durable events the feed reads on its own task; a larger backlog (start-up, a burst) is
/// read on a blocking thread.
const DIRECT_READ: u64 = 64;

impl Feed {
    /// An empty feed at `position`, rendering with `render`.
    pub fn new(position: u64, render: Render) -> Self {
        Feed {
            recent: RwLock::new(Recent::default()),
            fed: watch::channel(position).0,
            active: AtomicBool::new(false),
            render,
            checkpoints: watch::channel(None).0,
        }
    }

    /// Renders a newly signed checkpoint once and hands it to every subscriber. One that does
    /// not parse, or is not larger than the one published last, is ignored. Called on the
    /// checkpointer's thread: it renders and returns, never waits.
    pub fn publish_checkpoint(&self, note: &str) {
        let Some(item) = CheckpointItem::of(note, self.render) else {
            tracing::warn!("a signed checkpoint does not parse; not sent to subscribers");
            return;
        };
        let item = Arc::new(item);
        self.checkpoints.send_if_modified(|current| match current {
            Some(c) if c.size >= item.size => false,
            _ => {
                *current = Some(item);
                true
            }
        });
    }

    /// Follows the checkpoints published from now on (the current one counts as seen).
    pub fn checkpoints(&self) -> watch::Receiver<Option<Arc<CheckpointItem>>> {
        self.checkpoints.subscribe()
    }

    /// Renders a signed checkpoint as the feed renders them (for a subscriber that connects).
    pub fn render_checkpoint(&self, note: &str) -> Option<CheckpointItem> {
        CheckpointItem::of(note, self.render)
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
        let recent = &self.recent.read().items;
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
        let events = tokio::task::spawn_blocking(move || ledger.read_all_framed(after, PAGE))
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

    /// Adds rendered items to the window, dropping the oldest beyond [`FEED_CAPACITY`] items
    /// or [`FEED_BYTES`] bytes (the newest is always kept).
    fn keep(&self, items: Vec<Arc<FeedItem>>) {
        let mut recent = self.recent.write();
        for item in items {
            recent.bytes += item.frame.len();
            recent.items.push_back(item);
        }
        while recent.items.len() > FEED_CAPACITY
            || (recent.bytes > FEED_BYTES && recent.items.len() > 1)
        {
            if let Some(oldest) = recent.items.pop_front() {
                recent.bytes -= oldest.frame.len();
            }
        }
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
                    Ok(ledger.read_all_framed(fed, DIRECT_READ as usize))
                } else {
                    let ledger = ledger.clone();
                    let from = fed;
                    tokio::task::spawn_blocking(move || ledger.read_all_framed(from, 1024)).await
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
                // The frames go with `events`; only the renderings stay.
                drop(events);
                self.keep(items);
                self.fed.send_replace(fed);
            }
            if durable.changed().await.is_err() {
                return;
            }
        }
    }
}

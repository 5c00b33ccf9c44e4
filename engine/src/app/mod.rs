//! The application: what every core runs (HTTP routing, shape ownership) and what the cores
//! share (configuration, inboxes, status). Nothing here is behind a lock: cores own their shapes
//! and talk through bounded channels; the only shared mutable state is a few atomics.

pub mod admission;
pub mod closed_chunks;
pub mod core;
pub mod def_cache;
pub mod dormant;
pub mod durability;
pub mod head_cache;
pub mod live;
pub mod pool;
pub mod responses;
pub mod router;
pub mod serve;
pub mod snapshot_batch;
pub mod snapshot_writes;
pub mod sse;
pub mod sse_stream;
pub mod subqueries;
pub mod subset;
pub mod table_routes;
pub mod views;

use crate::config::Config;
use crate::http::Response;
use crate::ingest::txn::Txn;
use crate::shapes::def::ShapeDef;
use protocol::request::ShapeQuery;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Capacity of each core's inbox. The ingest core waits when a core falls this far behind.
pub const INBOX_CAPACITY: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Starting = 0,
    /// Waiting for the slot's advisory lock (another instance holds it).
    Waiting = 1,
    Active = 2,
    /// `ELECTRIC_REPLICATION_IDLE_TIMEOUT`: no transaction for that long, so every database
    /// connection was closed (a scale-to-zero database may sleep); the next shape request
    /// wakes replication. Shapes are served meanwhile; health says `active`, as upstream.
    Sleeping = 3,
}

/// State shared by all cores (read-mostly).
pub struct Shared {
    pub config: Config,
    pub db_url: String,
    pub cores: usize,
    pub inboxes: Vec<flume::Sender<CoreMsg>>,
    status: AtomicU8,
    /// Replication was active once: shapes are restored, so requests are served from what the
    /// cores hold even while Postgres is unreachable.
    ever_active: std::sync::atomic::AtomicBool,
    /// Per core: end LSN of the last transaction it has made durable (or had nothing to store).
    durable: Vec<AtomicU64>,
    pub metrics: crate::metrics::Metrics,
    /// Wakes replication from [`Status::Sleeping`] (capacity 1: wake-ups collapse).
    wake_tx: flume::Sender<()>,
    pub wake_rx: flume::Receiver<()>,
    /// Stream positions cores wait to see passed (a subquery shape's move-in boundary).
    pub progress: Progress,
}

/// The highest stream position some core waits for: the ingest core asks the server for its
/// position until it is passed, then tells every core (`CoreMsg::Progress`, in stream order).
pub struct Progress {
    wanted: AtomicU64,
    /// Wakes the ingest core when a core starts waiting (capacity 1: wake-ups collapse).
    wake_tx: flume::Sender<()>,
    pub wake_rx: flume::Receiver<()>,
}

impl Default for Progress {
    fn default() -> Self {
        let (wake_tx, wake_rx) = flume::bounded(1);
        Self {
            wanted: AtomicU64::new(0),
            wake_tx,
            wake_rx,
        }
    }
}

impl Progress {
    /// A core waits until the stream is past `lsn`.
    pub fn want(&self, lsn: u64) {
        let before = self
            .wanted
            .fetch_max(lsn, std::sync::atomic::Ordering::Relaxed);
        if before < lsn {
            let _ = self.wake_tx.try_send(());
        }
    }

    /// The position waited for, 0 for none.
    pub fn wanted(&self) -> u64 {
        self.wanted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The stream is at `lsn`: waits up to it are over.
    pub fn reached(&self, lsn: u64) {
        let _ = self.wanted.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |w| (w <= lsn).then_some(0),
        );
    }
}

impl Shared {
    pub fn new(config: Config, db_url: String, inboxes: Vec<flume::Sender<CoreMsg>>) -> Self {
        let (wake_tx, wake_rx) = flume::bounded(1);
        Self {
            wake_tx,
            wake_rx,
            progress: Progress::default(),
            cores: inboxes.len(),
            config,
            db_url,
            durable: inboxes.iter().map(|_| AtomicU64::new(0)).collect(),
            metrics: crate::metrics::Metrics::new(inboxes.len()),
            inboxes,
            status: AtomicU8::new(Status::Starting as u8),
            ever_active: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn ever_active(&self) -> bool {
        self.ever_active.load(Ordering::Acquire)
    }

    /// Forgets every core's durable position: after a purge (another database system), the
    /// old system's positions mean nothing to the new one and must not be acknowledged to it.
    pub fn reset_durable(&self) {
        for d in &self.durable {
            d.store(0, Ordering::Release);
        }
    }

    pub fn set_durable(&self, core: usize, lsn: u64) {
        self.durable[core].fetch_max(lsn, Ordering::AcqRel);
    }

    /// How far the slot may be acknowledged: every core has made everything up to it durable.
    pub fn min_durable(&self) -> u64 {
        self.durable
            .iter()
            .map(|d| d.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// Asks a sleeping replication to reconnect (see [`Status::Sleeping`]).
    pub fn wake(&self) {
        if self.status() == Status::Sleeping {
            let _ = self.wake_tx.try_send(());
        }
    }

    pub fn status(&self) -> Status {
        match self.status.load(Ordering::Acquire) {
            3 => Status::Sleeping,
            2 => Status::Active,
            1 => Status::Waiting,
            _ => Status::Starting,
        }
    }

    pub fn set_status(&self, s: Status) {
        if s == Status::Active {
            self.ever_active.store(true, Ordering::Release);
        }
        self.status.store(s as u8, Ordering::Release);
    }
}

/// A shape request forwarded to the core that owns the shape.
pub struct ShapeCall {
    pub def: Arc<ShapeDef>,
    pub query: ShapeQuery,
    pub if_none_match: Vec<String>,
    pub head: bool,
    /// POST responses are never cached (§4.2 rule 1).
    pub post: bool,
}

/// How `DELETE /v1/shape` names its target.
pub enum DeleteTarget {
    Definition {
        def: Arc<ShapeDef>,
        handle: Option<String>,
    },
    Handle(String),
}

/// Messages between cores.
pub enum CoreMsg {
    /// A committed transaction, from the ingest core, in commit order.
    Txn(Arc<Txn>),
    /// Serve a shape request on its owner; the response goes back on `reply`.
    Shape {
        call: Box<ShapeCall>,
        reply: flume::Sender<Response>,
    },
    /// A core holds live requests at `after` of `handle` (owned by the receiver): answer with a
    /// `Batch` once the log is past it (`live`).
    Watch {
        def: Arc<ShapeDef>,
        handle: String,
        after: protocol::offset::LogOffset,
        from: usize,
    },
    /// The owner's answer to a `Watch`, shared by every core waiting at that offset.
    Batch(Arc<live::Batch>),
    /// The owner's view of shapes it changed (`views`).
    Views(Arc<views::Update>),
    /// The owner removed this shape: drop what this core keeps of it (`closed_chunks`,
    /// `views`).
    Forget(Arc<str>),
    /// Another core answered a request of this shape (owned by the receiver) from its
    /// `closed_chunks`: the shape is in use.
    Touch(String),
    Delete {
        target: DeleteTarget,
        reply: flume::Sender<Response>,
    },
    /// Serve a subset snapshot on its shape's owner (`subset`); the response goes on `reply`.
    Subset {
        call: Box<subset::SubsetCall>,
        reply: flume::Sender<Response>,
    },
    /// The replication stream is at this position: every transaction before it was handed
    /// over already (a subquery shape waiting for a move-in's boundary may splice).
    Progress(u64),
    /// Replication went to sleep: close the idle pooled connections.
    ReleaseConnections,
    /// Orderly shutdown: write every shape's buffers and pending metadata, then reply.
    Shutdown { reply: flume::Sender<()> },
    /// Before replication starts: bring back (or, with `purge`, discard) the shapes recovered
    /// from storage, then reply.
    Restore {
        purge: bool,
        reply: flume::Sender<()>,
    },
}

//! A core's Postgres connections for snapshots, catalog lookups and subset queries: idle ones
//! are reused, and at most `limit` are in use at once (`ELECTRIC_DB_POOL_SIZE` split over the
//! cores). Past the limit a caller waits for a connection to come back, so a storm of new
//! shapes queues here instead of opening connections until Postgres refuses them
//! ("too many clients already").

use crate::pg::{Connection, PgError};
use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

/// Idle connections kept per core.
const IDLE_MAX: usize = 4;

pub struct Pool {
    idle: RefCell<Vec<Connection>>,
    in_use: Cell<usize>,
    /// One token per free slot; waiters queue on the receiver in FIFO order, and a returned
    /// slot wakes exactly one of them.
    tokens: (flume::Sender<()>, flume::Receiver<()>),
}

/// A connection checked out of the pool. Give it back with [`Pool::put`] when it is healthy;
/// dropping it (after an error) closes it and frees its slot.
pub struct Pooled {
    conn: Option<Connection>,
    pool: Rc<Pool>,
}

impl Pool {
    pub fn new(limit: usize) -> Rc<Self> {
        assert!(limit >= 1, "a pool needs room for one connection");
        let tokens = flume::bounded(limit);
        for _ in 0..limit {
            tokens.0.try_send(()).expect("room for every token");
        }
        Rc::new(Self {
            idle: RefCell::default(),
            in_use: Cell::new(0),
            tokens,
        })
    }

    /// A connection, reused or opened with `connect`, once fewer than `limit` are in use
    /// (waiting in arrival order otherwise).
    pub async fn get<F, Fut>(self: &Rc<Self>, connect: F) -> Result<Pooled, PgError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Connection, PgError>>,
    {
        // The pool holds the sender, so the channel never closes while waiting.
        self.tokens
            .1
            .recv_async()
            .await
            .expect("the pool holds a token sender");
        self.in_use.set(self.in_use.get() + 1);
        // From here the slot is released by `Pooled`'s drop, also if connecting fails.
        let mut pooled = Pooled {
            conn: None,
            pool: self.clone(),
        };
        let reused = self.idle.borrow_mut().pop();
        pooled.conn = Some(match reused {
            Some(c) => c,
            None => connect().await?,
        });
        Ok(pooled)
    }

    /// Returns a healthy connection for reuse.
    pub fn put(&self, mut pooled: Pooled) {
        if let Some(c) = pooled.conn.take() {
            let mut idle = self.idle.borrow_mut();
            if idle.len() < IDLE_MAX {
                idle.push(c);
            }
        }
        // `pooled` drops here and frees its slot.
    }

    pub fn in_use(&self) -> usize {
        self.in_use.get()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let n = self.pool.in_use.get();
        assert!(n > 0, "pool slot released twice");
        self.pool.in_use.set(n - 1);
        // Cannot fail: a token was taken for this slot, so there is room for it.
        let _ = self.pool.tokens.0.try_send(());
    }
}

impl Deref for Pooled {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a checked-out connection")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("a checked-out connection")
    }
}

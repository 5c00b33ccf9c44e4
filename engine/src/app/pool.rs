//! A core's Postgres connections for snapshots, catalog lookups and subset queries: idle ones
//! are reused, and at most `limit` are in use at once (`ELECTRIC_DB_POOL_SIZE` split over the
//! cores). Past the limit a caller waits for a connection to come back, so a storm of new
//! shapes queues here instead of opening connections until Postgres refuses them
//! ("too many clients already").

use crate::pg::{Connection, PgError};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Idle connections kept per core.
const IDLE_MAX: usize = 4;

pub struct Pool {
    idle: RefCell<Vec<Connection>>,
    in_use: Cell<usize>,
    limit: usize,
    /// Callers waiting for a slot (ticket, waker, priority): priority callers first, each
    /// group in arrival order; a freed slot wakes the first one only.
    waiters: RefCell<VecDeque<(u64, Waker, bool)>>,
    next_ticket: Cell<u64>,
}

/// A connection checked out of the pool. Give it back with [`Pool::put`] when it is healthy;
/// dropping it (after an error) closes it and frees its slot.
pub struct Pooled {
    conn: Option<Connection>,
    _slot: Slot,
}

/// One of the pool's `limit` slots, freed (and the next waiter woken) on drop.
pub struct Slot {
    pool: Rc<Pool>,
}

impl Pool {
    pub fn new(limit: usize) -> Rc<Self> {
        assert!(limit >= 1, "a pool needs room for one connection");
        Rc::new(Self {
            idle: RefCell::default(),
            in_use: Cell::new(0),
            limit,
            waiters: RefCell::default(),
            next_ticket: Cell::new(0),
        })
    }

    /// A connection, reused or opened with `connect`, once fewer than `limit` are in use
    /// (waiting in arrival order otherwise).
    pub async fn get<F, Fut>(self: &Rc<Self>, connect: F) -> Result<Pooled, PgError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Connection, PgError>>,
    {
        self.get_as(false, connect).await
    }

    /// [`Pool::get`] ahead of every caller already waiting: for short queries that requests
    /// wait on (catalog lookups), which must not queue behind a storm's snapshots.
    pub async fn get_first<F, Fut>(self: &Rc<Self>, connect: F) -> Result<Pooled, PgError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Connection, PgError>>,
    {
        self.get_as(true, connect).await
    }

    async fn get_as<F, Fut>(self: &Rc<Self>, first: bool, connect: F) -> Result<Pooled, PgError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Connection, PgError>>,
    {
        // From here the slot is released on drop, also if connecting fails.
        let slot = self.slot_as(first).await;
        let reused = self.idle.borrow_mut().pop();
        let conn = match reused {
            Some(c) => c,
            None => connect().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            _slot: slot,
        })
    }

    /// Waits for a free slot (first come, first served) and takes it.
    pub async fn slot(self: &Rc<Self>) -> Slot {
        self.slot_as(false).await
    }

    /// Waits for a free slot ahead of the callers already waiting, and takes it.
    pub async fn slot_first(self: &Rc<Self>) -> Slot {
        self.slot_as(true).await
    }

    async fn slot_as(self: &Rc<Self>, first: bool) -> Slot {
        Acquire {
            pool: self,
            ticket: None,
            first,
        }
        .await;
        Slot { pool: self.clone() }
    }

    /// Returns a healthy connection for reuse.
    /// Closes every idle connection (connections in use close when they come back while the
    /// caller says so, see [`Core::put_conn`](super::core::Core::put_conn)).
    pub fn release_idle(&self) -> usize {
        std::mem::take(&mut *self.idle.borrow_mut()).len()
    }

    pub fn put(&self, mut pooled: Pooled) {
        if let Some(c) = pooled.conn.take() {
            let mut idle = self.idle.borrow_mut();
            if idle.len() < IDLE_MAX {
                idle.push(c);
            }
        }
        // `pooled` drops here and frees its slot.
        drop(pooled);
    }

    pub fn in_use(&self) -> usize {
        self.in_use.get()
    }
}

impl Pool {
    fn wake_first(&self) {
        if let Some((_, w, _)) = self.waiters.borrow().front() {
            w.wake_by_ref();
        }
    }
}

/// Waits for a free slot, first come first served; on completion the slot is taken.
struct Acquire<'a> {
    pool: &'a Pool,
    ticket: Option<u64>,
    /// Queue at the front instead of the back (and take a free slot at once).
    first: bool,
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let pool = self.pool;
        let free = pool.in_use.get() < pool.limit;
        let mut waiters = pool.waiters.borrow_mut();
        let first = match self.ticket {
            None => self.first || waiters.is_empty(),
            Some(t) => waiters.front().is_some_and(|(f, ..)| *f == t),
        };
        if free && first {
            if self.ticket.take().is_some() {
                waiters.pop_front();
            }
            pool.in_use.set(pool.in_use.get() + 1);
            drop(waiters);
            // More slots may be free (several returned at once): pass the turn on.
            if pool.in_use.get() < pool.limit {
                pool.wake_first();
            }
            return Poll::Ready(());
        }
        match self.ticket {
            Some(t) => {
                if let Some(entry) = waiters.iter_mut().find(|(f, ..)| *f == t) {
                    entry.1.clone_from(cx.waker());
                }
            }
            None => {
                let t = pool.next_ticket.get();
                pool.next_ticket.set(t + 1);
                if self.first {
                    // Behind the priority callers already waiting, ahead of everyone else.
                    let at = waiters.iter().take_while(|(.., first)| *first).count();
                    waiters.insert(at, (t, cx.waker().clone(), true));
                } else {
                    waiters.push_back((t, cx.waker().clone(), false));
                }
                self.ticket = Some(t);
            }
        }
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        // A caller that gives up leaves the queue; if it was first, the next one may go.
        if let Some(t) = self.ticket.take() {
            let mut waiters = self.pool.waiters.borrow_mut();
            waiters.retain(|(f, ..)| *f != t);
            drop(waiters);
            if self.pool.in_use.get() < self.pool.limit {
                self.pool.wake_first();
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let n = self.pool.in_use.get();
        assert!(n > 0, "pool slot released twice");
        self.pool.in_use.set(n - 1);
        self.pool.wake_first();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn run(f: impl std::future::Future<Output = ()>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f);
    }

    #[test]
    fn at_most_limit_slots_and_waiters_go_in_order() {
        run(async {
            let pool = Pool::new(2);
            let order = Rc::new(RefCell::new(Vec::new()));
            let a = pool.slot().await;
            let b = pool.slot().await;
            assert_eq!(pool.in_use(), 2);
            let mut tasks = Vec::new();
            for i in 0..5 {
                let (pool, order) = (pool.clone(), order.clone());
                tasks.push(monoio::spawn(async move {
                    let slot = pool.slot().await;
                    assert!(pool.in_use() <= 2, "never more than the limit");
                    order.borrow_mut().push(i);
                    monoio::time::sleep(std::time::Duration::from_millis(2)).await;
                    drop(slot);
                }));
            }
            monoio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(order.borrow().is_empty(), "all wait while the pool is full");
            drop(a);
            drop(b);
            for t in tasks {
                t.await;
            }
            assert_eq!(
                *order.borrow(),
                vec![0, 1, 2, 3, 4],
                "first come, first served"
            );
            assert_eq!(pool.in_use(), 0);
            assert!(pool.waiters.borrow().is_empty());
        });
    }

    #[test]
    fn a_priority_caller_goes_before_the_queue() {
        run(async {
            let pool = Pool::new(1);
            let order = Rc::new(RefCell::new(Vec::new()));
            let held = pool.slot().await;
            let mut tasks = Vec::new();
            for i in 0..3 {
                let (pool, order) = (pool.clone(), order.clone());
                tasks.push(monoio::spawn(async move {
                    let slot = pool.slot().await;
                    order.borrow_mut().push(i);
                    drop(slot);
                }));
            }
            monoio::time::sleep(std::time::Duration::from_millis(2)).await;
            for i in [100, 101] {
                let (p, o) = (pool.clone(), order.clone());
                tasks.push(monoio::spawn(async move {
                    let slot = p.slot_first().await;
                    assert_eq!(p.in_use(), 1, "still within the limit");
                    o.borrow_mut().push(i);
                    drop(slot);
                }));
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            // A priority caller that gives up leaves the others' order intact.
            let gave_up =
                monoio::time::timeout(std::time::Duration::from_millis(2), pool.slot_first()).await;
            assert!(gave_up.is_err());
            monoio::time::sleep(std::time::Duration::from_millis(2)).await;
            assert!(order.borrow().is_empty(), "all wait while the pool is full");
            drop(held);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![100, 101, 0, 1, 2]);
            assert!(pool.waiters.borrow().is_empty());
        });
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_queue() {
        run(async {
            let pool = Pool::new(1);
            let held = pool.slot().await;
            let gave_up =
                monoio::time::timeout(std::time::Duration::from_millis(5), pool.slot()).await;
            assert!(gave_up.is_err(), "the pool is full");
            assert!(
                pool.waiters.borrow().is_empty(),
                "the cancelled waiter is gone"
            );
            drop(held);
            let again = pool.slot().await;
            assert_eq!(pool.in_use(), 1);
            drop(again);
        });
    }
}

//! A single-threaded broadcast notification: waiters see every `notify` that happens after they
//! started listening. Used to wake long-polls of a shape when its log grows or it is invalidated.
//! A listener that is dropped (a timed-out long-poll) removes its waker, so a quiet shape with
//! many polls does not accumulate wakers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    version: u64,
    next_id: u64,
    wakers: HashMap<u64, Waker>,
}

#[derive(Clone, Default)]
pub struct Event {
    inner: Rc<RefCell<Inner>>,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn notify(&self) {
        let wakers = {
            let mut inner = self.inner.borrow_mut();
            inner.version += 1;
            std::mem::take(&mut inner.wakers)
        };
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// A future that completes at the next `notify` after this call.
    pub fn listen(&self) -> Listener {
        let mut inner = self.inner.borrow_mut();
        inner.next_id += 1;
        Listener {
            inner: self.inner.clone(),
            seen: inner.version,
            id: inner.next_id,
        }
    }

    pub fn waiters(&self) -> usize {
        self.inner.borrow().wakers.len()
    }
}

pub struct Listener {
    inner: Rc<RefCell<Inner>>,
    seen: u64,
    id: u64,
}

impl Future for Listener {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.version != self.seen {
            return Poll::Ready(());
        }
        inner.wakers.insert(self.id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.wakers.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fire_and_notifications_win() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let timers = Timers::new();
            monoio::spawn(timers.clone().sweep());
            let ev = Event::new();
            let start = std::time::Instant::now();
            let changed = timers
                .wait_until(ev.listen(), start + std::time::Duration::from_millis(120))
                .await;
            assert!(!changed, "nothing notified: the deadline ends the wait");
            assert!(start.elapsed() >= std::time::Duration::from_millis(120));
            let ev2 = ev.clone();
            monoio::spawn(async move {
                monoio::time::sleep(std::time::Duration::from_millis(20)).await;
                ev2.notify();
            });
            let changed = timers
                .wait_until(
                    ev.listen(),
                    std::time::Instant::now() + std::time::Duration::from_secs(60),
                )
                .await;
            assert!(changed);
            assert_eq!(timers.waiting(), 0, "a finished wait leaves no entry");
        });
    }

    #[test]
    fn dropped_listeners_leave_no_wakers() {
        let ev = Event::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut l = ev.listen();
            assert!(Pin::new(&mut l).poll(&mut cx).is_pending());
        }
        assert_eq!(ev.waiters(), 0);
        let mut l = ev.listen();
        assert!(Pin::new(&mut l).poll(&mut cx).is_pending());
        ev.notify();
        assert!(Pin::new(&mut l).poll(&mut cx).is_ready());
    }
}

/// Coarse per-core deadlines for long-polls. A monoio timer per held request costs about
/// 800 bytes of future state; thousands of held requests instead share one sweeper task that
/// wakes expired waiters every [`Timers::TICK`].
#[derive(Clone, Default)]
pub struct Timers {
    inner: Rc<RefCell<TimersInner>>,
}

#[derive(Default)]
struct TimersInner {
    next_id: u64,
    waiting: std::collections::BTreeMap<(std::time::Instant, u64), Waker>,
    /// Set at shutdown: every wait ends now, as if its deadline had passed.
    ended: bool,
}

impl Timers {
    /// Deadline precision: a wait may end up to this much late.
    pub const TICK: std::time::Duration = std::time::Duration::from_millis(50);

    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes expired waiters forever; spawn once per core.
    pub async fn sweep(self) {
        loop {
            monoio::time::sleep(Self::TICK).await;
            let now = std::time::Instant::now();
            let expired: Vec<Waker> = {
                let mut inner = self.inner.borrow_mut();
                let later = inner.waiting.split_off(&(now, u64::MAX));
                let expired = std::mem::replace(&mut inner.waiting, later);
                expired.into_values().collect()
            };
            for w in expired {
                w.wake();
            }
        }
    }

    /// Completes with `true` at the listener's next notification, or `false` at `deadline`.
    pub fn wait_until(&self, listener: Listener, deadline: std::time::Instant) -> WaitUntil {
        let id = {
            let mut inner = self.inner.borrow_mut();
            inner.next_id += 1;
            inner.next_id
        };
        WaitUntil {
            listener,
            timers: self.inner.clone(),
            key: (deadline, id),
            registered: false,
        }
    }

    pub fn waiting(&self) -> usize {
        self.inner.borrow().waiting.len()
    }

    /// Ends every wait, present and future, as timed out: at shutdown, held long-polls get
    /// their regular "nothing new" answer and SSE streams their regular end, instead of a
    /// connection cut mid-response when the process exits.
    pub fn end_all(&self) {
        let wakers: Vec<Waker> = {
            let mut inner = self.inner.borrow_mut();
            inner.ended = true;
            std::mem::take(&mut inner.waiting).into_values().collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether [`Timers::end_all`] was called.
    pub fn ended(&self) -> bool {
        self.inner.borrow().ended
    }
}

pub struct WaitUntil {
    listener: Listener,
    timers: Rc<RefCell<TimersInner>>,
    key: (std::time::Instant, u64),
    registered: bool,
}

impl Future for WaitUntil {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if Pin::new(&mut self.listener).poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        if std::time::Instant::now() >= self.key.0 {
            return Poll::Ready(false);
        }
        let key = self.key;
        let mut timers = self.timers.borrow_mut();
        if timers.ended {
            return Poll::Ready(false);
        }
        timers.waiting.insert(key, cx.waker().clone());
        drop(timers);
        self.registered = true;
        Poll::Pending
    }
}

impl Drop for WaitUntil {
    fn drop(&mut self) {
        if self.registered {
            if let Ok(mut inner) = self.timers.try_borrow_mut() {
                inner.waiting.remove(&self.key);
            }
        }
    }
}

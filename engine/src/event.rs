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

//! A minimal executor for wgpu's futures.
//!
//! On native backends wgpu's futures (adapter, device, error scopes) are ready when created or
//! after a `Device::poll`, so polling in a loop is all it takes; no async runtime is pulled in.

use std::future::Future;
use std::task::{Context, Poll, Waker};

pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

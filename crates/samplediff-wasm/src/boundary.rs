//! Nothing panics across the JavaScript boundary.
//!
//! Every export runs its body through [`guarded`]: errors are one-line messages, and a panic
//! (a bug) is caught where unwinding exists (native tests) and turned into an error too. The
//! browser build aborts on panic (wasm32-unknown-unknown has no unwinding), so there the panic
//! hook from [`install_panic_hook`] first leaves the message on `globalThis.__samplediffPanic`;
//! the JavaScript wrapper (`web/src/lib`) turns the resulting trap into a rejected promise with
//! that message and starts a fresh instance, since a trapped one may hold broken state.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Run `f`; an error stays an error, a panic becomes one ("internal error: ...").
pub fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(format!("internal error: {}", panic_text(&*payload))))
}

/// The message of a panic payload (`panic!("..")` gives a `&str` or a `String`).
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// The global property the panic hook writes (read by the JavaScript wrapper).
pub const PANIC_PROPERTY: &str = "__samplediffPanic";

/// Record panic messages where JavaScript can read them after the trap. Idempotent.
#[cfg(target_arch = "wasm32")]
pub fn install_panic_hook() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // One line, as every error message: what, then where.
            let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
            let message = format!("internal error: {}{at}", panic_text(info.payload()));
            let _ = js_sys::Reflect::set(&js_sys::global(), &PANIC_PROPERTY.into(), &message.into());
            previous(info);
        }));
    });
}

#[cfg(not(target_arch = "wasm32"))]
pub fn install_panic_hook() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_pass_through_and_panics_become_errors() {
        assert_eq!(guarded(|| Ok::<_, String>(3)), Ok(3));
        assert_eq!(guarded(|| Err::<u8, _>("bad file".to_string())), Err("bad file".to_string()));
        let r = guarded(|| -> Result<u8, String> {
            let v: Vec<u8> = vec![];
            Ok(v[usize::MAX / 2]) // a bug: out of bounds
        });
        let e = r.unwrap_err();
        assert!(e.starts_with("internal error: index out of bounds"), "{e}");
    }
}

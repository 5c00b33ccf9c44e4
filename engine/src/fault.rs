//! Fault injection for tests, compiled into debug builds only: `AMPERE_FAULT=<point>:<arg>`
//! makes the named point panic when it is reached with that argument, so tests can check what
//! the process does with a bug (`panic_policy`) at places no input can reach on purpose.
//! Release builds compile every point to nothing.
//!
//! Points: `forwarded:<table>` — a shape request of `<table>` forwarded to its owner core, in
//! the task spawned there to serve it.

/// Panics if `AMPERE_FAULT` names `point` with `arg` (debug builds only).
#[cfg(debug_assertions)]
pub fn panic_at(point: &str, arg: &str) {
    static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let fault = FAULT.get_or_init(|| std::env::var("AMPERE_FAULT").ok());
    if let Some((p, a)) = fault.as_deref().and_then(|f| f.split_once(':')) {
        if p == point && a == arg {
            panic!("injected fault {point}:{arg} (AMPERE_FAULT)");
        }
    }
}

/// Release builds: no fault points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn panic_at(_point: &str, _arg: &str) {}

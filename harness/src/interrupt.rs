//! SIGINT, SIGTERM and SIGHUP for the whole run: they ask every case to stop and release what it holds.
//!
//! The signals are blocked in every thread and taken by one waiter thread, so no case is killed
//! half-way through a mount or a loop attach. The waiter sets a flag; `exec` kills the children it
//! is waiting on, the case returns an error, and the guards unmount and detach on the way out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use nix::sys::signal::{SigSet, Signal};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Takes over the stop signals. Call it first thing in `main`, before any thread starts: threads
/// inherit the blocked mask, and one started earlier would still die on the default action.
pub fn install() {
    INSTALL.call_once(|| {
        let mut set = SigSet::empty();
        for signal in STOP_SIGNALS {
            set.add(signal);
        }
        if let Err(err) = set.thread_block() {
            eprintln!("sendtest: cannot block stop signals ({err}); Ctrl-C may leave loop devices");
            return;
        }
        std::thread::Builder::new()
            .name("sendtest-signals".into())
            .spawn(move || loop {
                let Ok(signal) = set.wait() else { continue };
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    eprintln!("sendtest: {signal} again; still releasing mounts and loop devices");
                } else {
                    eprintln!("sendtest: {signal}: stopping, releasing mounts and loop devices");
                }
            })
            .expect("spawning the signal thread");
    });
}

/// Whether a stop signal has arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error a step returns when it stops because of a signal.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by a signal")
    }
}

impl std::error::Error for Interrupted {}

/// Returns `Err(Interrupted)` once a stop signal has arrived.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

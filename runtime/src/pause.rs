//! The pause process of a `shareProcessNamespace` pod, run from podctl's own binary
//! (`podctl __podctl_pause`, see `oci::pause_spec`): PID 1 of the pod's shared PID namespace.
//!
//! A PID namespace ends when its first process does, killing everything in it; so the
//! namespace the pod's containers share must belong to a process that lives as long as the
//! pod, as the kubelet's pause container does. This one only waits: it reaps the orphans
//! the namespace hands it and exits on SIGTERM or SIGINT.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

/// Runs the pause process; returns only when asked to stop.
pub fn run() -> std::process::ExitCode {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        signals.add(s);
    }
    // Blocked, the signals queue up for `wait` (PID 1 has no default actions to rely on).
    if signals.thread_block().is_err() {
        return std::process::ExitCode::FAILURE;
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(_) => return std::process::ExitCode::SUCCESS,
            Err(_) => {}
        }
    }
}

/// Collects every child that has exited.
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

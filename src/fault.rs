//! Named crash points for the crash tests, compiled in only with the `fault-injection` feature
//! (never in release packages). `SEEDPART_FAULT=NAME` makes the process die at that point as
//! abruptly as it can (`_exit`, no unwinding, no destructors, no flushing of our buffers), so a
//! test can run seedpart again and check that it converges.

/// Every crash point, in the order `run` passes them: the crash tests iterate over this list.
pub const POINTS: &[&str] = &[
    "before-apply-commit",
    "after-copy",
    "after-state-write",
    "after-delete-table",
    "gpt-between-copies",
    "after-delete-kernel",
    "after-relocate",
    "mbr-after-extended",
    "after-grow-table",
    "after-grow-kernel",
    "before-fs-grow",
    "after-fs-grow",
];

/// Dies here when `SEEDPART_FAULT` names this point.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    if std::env::var("SEEDPART_FAULT").is_ok_and(|v| v == name) {
        eprintln!("seedpart: fault injection: crashing at {name}");
        // SAFETY: _exit ends the process at once; nothing is used afterwards.
        unsafe { libc::_exit(99) };
    }
}

/// Without the feature, crash points compile to nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

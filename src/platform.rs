//! The few things that differ between operating systems, each with a portable fallback.

/// Raises this process's soft limit of open files to its hard limit, so that the server
/// can hold as many connections as the system allows. Returns `(before, after)` when the
/// limit changed.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        let before = lim.rlim_cur;
        if before >= lim.rlim_max {
            return None;
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return None;
        }
        Some((before as u64, lim.rlim_max as u64))
    }
}

/// Windows has no per-process limit of this kind to raise.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    None
}

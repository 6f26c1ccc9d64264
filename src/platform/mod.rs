//! The few things that differ between operating systems, each with a portable fallback:
//! the open-file limit, the safe handling of the log folder, the log file and stderr, the
//! events that stop the server ([`stop`]), the credential store that can hold the SIP
//! password ([`credentials`]), and on Windows the registry ([`windows`]).

pub mod credentials;
pub mod stop;
#[cfg(windows)]
pub mod windows;

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

/// The user this process runs as (effective user id on Unix): a tag for per-user names.
#[cfg(unix)]
pub fn user_tag() -> String {
    euid().to_string()
}

/// The user this process runs as: a tag for per-user names (the temporary folder is
/// already per user on Windows).
#[cfg(not(unix))]
pub fn user_tag() -> String {
    "user".to_owned()
}

#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A second handle on this process's standard error, written without Rust's lock on
/// `std::io::stderr()`: a thread blocked writing to it (a pipe nobody reads) then holds
/// up no one else. `None` when there is none to duplicate.
#[cfg(unix)]
pub fn stderr_file() -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
}

/// A second handle on this process's standard error, written without Rust's lock on
/// `std::io::stderr()`. `None` when there is none to duplicate.
#[cfg(windows)]
pub fn stderr_file() -> Option<std::fs::File> {
    use std::os::windows::io::AsHandle;
    std::io::stderr()
        .as_handle()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
}

/// Standard error cannot be duplicated on this system.
#[cfg(not(any(unix, windows)))]
pub fn stderr_file() -> Option<std::fs::File> {
    None
}

/// An error saying why a log file or folder was refused.
fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
}

/// Opens `path` for appending, creating it readable and writable by this user only
/// (0600). It must be a regular file of this user with a single name and no permissions
/// for others: a symbolic link is not followed, a FIFO does not block the open, and
/// anything else is refused with an error saying why.
#[cfg(unix)]
pub fn open_private_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EMLINK) => {
                refused("it is a symbolic link, which bapiws does not follow".into())
            }
            Some(libc::ENXIO) => refused("it is a FIFO or a socket, not a regular file".into()),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refused("it is not a regular file".into()));
    }
    if meta.uid() != euid() {
        return Err(refused(format!(
            "it belongs to another user (uid {}, bapiws runs as uid {})",
            meta.uid(),
            euid()
        )));
    }
    if meta.nlink() != 1 {
        return Err(refused(format!(
            "it has {} names (hard links); bapiws writes only to a file with one",
            meta.nlink()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refused(format!(
            "other users may read or write it (mode {mode:04o}); bapiws writes only to a file \
             that only its user can (0600): remove it or chmod 600 it"
        )));
    }
    // A regular file: writes go back to blocking (O_NONBLOCK only kept the open from
    // waiting on a FIFO).
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// Opens `path` for appending, creating it; it must be a regular file.
#[cfg(not(unix))]
pub fn open_private_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(refused("it is not a regular file".into()));
    }
    Ok(file)
}

/// Creates `dir` and its missing parents, readable by this user only (0700 on Unix).
/// An existing folder is left as it is.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Checks that `dir` is a folder of this user that others cannot write to (so that no
/// one else can replace or delete the files in it).
#[cfg(unix)]
pub fn check_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(refused(format!("{} is not a folder", dir.display())));
    }
    if meta.uid() != euid() {
        return Err(refused(format!(
            "the folder {} belongs to another user (uid {}, bapiws runs as uid {})",
            dir.display(),
            meta.uid(),
            euid()
        )));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(refused(format!(
            "every user may write to the folder {} (mode {:04o})",
            dir.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Checks that `dir` is a folder.
#[cfg(not(unix))]
pub fn check_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if std::fs::metadata(dir)?.is_dir() {
        Ok(())
    } else {
        Err(refused(format!("{} is not a folder", dir.display())))
    }
}

/// Whether `meta` (from `symlink_metadata`) is a regular file of this user: one that
/// bapiws may delete when it cleans up old log files.
#[cfg(unix)]
pub fn is_own_regular_file(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.file_type().is_file() && meta.uid() == euid()
}

/// Whether `meta` (from `symlink_metadata`) is a regular file.
#[cfg(not(unix))]
pub fn is_own_regular_file(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_file()
}

/// A registry value as the server reads it (the registry exists on Windows only; the
/// type is portable so that what is made of it is tested everywhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryValue {
    /// REG_SZ, or REG_EXPAND_SZ with its `%VARIABLE%`s expanded.
    Text(String),
    /// REG_DWORD or REG_QWORD.
    Number(u64),
    /// REG_MULTI_SZ.
    List(Vec<String>),
    /// Another type (its REG_* number), or data too large to be a setting.
    Unsupported(u32),
}

/// A registry key's values and its subkeys' values (one level).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryKey {
    /// Where it was read, as `HKLM\Software\…` (for messages).
    pub path: String,
    /// The key's values, by name.
    pub values: Vec<(String, RegistryValue)>,
    /// Each subkey's name and values.
    pub subkeys: Vec<(String, Vec<(String, RegistryValue)>)>,
    /// Subkeys that could not be read, and why.
    pub skipped: Vec<(String, String)>,
}

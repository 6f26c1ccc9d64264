//! `bapiwsw`: on Windows, the `bapiws` program built for the GUI subsystem, so that it
//! runs without a console window (as `pythonw` is to `python`). It is the same program,
//! commands and settings: the start-at-login entries (`bapiws autostart enable`, the MSI)
//! run `bapiwsw.exe serve`, whose log is the file in `%TEMP%` and which stops at logoff,
//! shutdown or `bapiws stop`. Elsewhere it only says to run `bapiws`.
#![cfg_attr(windows, windows_subsystem = "windows")]
#![deny(clippy::unwrap_used, clippy::expect_used)]

#[cfg(windows)]
#[path = "../main.rs"]
mod program;

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    program::main()
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!("bapiwsw is bapiws without a console window, for Windows; here, run bapiws");
    std::process::ExitCode::from(2)
}

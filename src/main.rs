//! The `bapiws` command: the server (`bapiws serve`) and a client for it.

// Nothing outside tests may unwrap: input must never be able to panic the program.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use bapiws::client::{self, Client, ClientError};
use bapiws::config::{Config, ServeArgs};
use bapiws::server::Server;

#[derive(Parser)]
#[command(
    name = "bapiws",
    version,
    about = "A local WebSocket JSON-RPC server that lets web pages drive the phone (EnreachClientAPI), and a client for it.",
    after_help = "Start the server with `bapiws serve`; the other commands talk to a running server."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// The server's WebSocket URL.
    #[arg(long, env = "BAPIWS_URL", default_value = client::DEFAULT_URL, global = true)]
    url: String,
    /// Init this backend first (default: the server's default; `sim` for `bapiws sim`).
    #[arg(long, global = true)]
    backend: Option<String>,
}

#[derive(Args, Clone)]
struct CallArg {
    /// Act on this call id (see `bapiws calls`) instead of the one the server picks.
    #[arg(long = "call", value_name = "ID")]
    id: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (on the built-in simulated phone unless configured otherwise).
    Serve(Box<ServeArgs>),
    /// Check this workstation's setup (ports, configuration, log folder, baresip, the
    /// running server, browsers) and print each fix. Takes the settings of `serve`.
    /// Exits with 1 when something is wrong.
    Doctor(Box<ServeArgs>),
    /// Print the phone's state (Available, Busy, …, Offline).
    State(ClientArgs),
    /// Call a number.
    Call {
        /// The number: digits with an optional leading +; spaces and -.() are ignored.
        number: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Answer the latest ringing inbound call (or the call given by --call).
    Answer {
        #[command(flatten)]
        call: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Hang up the active call (or the call given by --call).
    Hangup {
        #[command(flatten)]
        call: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Put the connected call on hold (or the call given by --call).
    Hold {
        #[command(flatten)]
        call: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Resume the held call (or the call given by --call).
    Resume {
        #[command(flatten)]
        call: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Blind transfer: the far end of the connected call (or --call) is asked to call NUMBER.
    Transfer {
        /// The number: digits with an optional leading +; spaces and -.() are ignored.
        number: String,
        #[command(flatten)]
        call: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send DTMF digits on the connected call (or the call given by --call).
    Dtmf {
        /// 1 to 32 of 0-9, *, #, A-D.
        digits: String,
        #[command(flatten)]
        call: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Mute the microphone.
    Mute(ClientArgs),
    /// Unmute the microphone.
    Unmute(ClientArgs),
    /// List the active calls.
    Calls(ClientArgs),
    /// Print notifications as they arrive, until Ctrl-C.
    Watch {
        /// Print each notification as its raw JSON line.
        #[arg(long)]
        json: bool,
        /// Also print the call-control extension notifications (CallHeld, CallResumed,
        /// CallTransferred, MuteChanged, CallHeldByFarEnd, CallResumedByFarEnd).
        #[arg(long)]
        extensions: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop the bapiws servers of this Windows session, also those started at login
    /// without a console window: each stops as on Ctrl-C (clients told, the log written).
    /// Elsewhere, stop a server with Ctrl-C or SIGTERM (`systemctl --user stop bapiws` for
    /// the package's user service). Exit codes: 0 stopped, 1 none running or one still
    /// running after 15 s, 2 not on this system.
    Stop,
    /// Start the server when you log in, or stop doing so: `enable` writes the entry
    /// (Windows: the Run key of HKCU; elsewhere ~/.config/autostart/bapiws.desktop) with
    /// this program's path, `disable` removes it, `status` shows it.
    Autostart {
        #[command(subcommand)]
        action: AutostartAction,
    },
    /// Call the number of a tel:, callto: or sip: link: what a browser runs for such a link
    /// once `bapiws handler enable` made bapiws their handler. Errors are shown as a
    /// desktop notification (Windows: a message box) and on stderr. Takes the settings of
    /// `serve` (the port to reach, link_confirm). Exit codes: 0 called, 1 the server
    /// refused, 2 usage or configuration error, 3 no server reached, 4 not a number that
    /// can be dialled, 5 not confirmed.
    Dial {
        /// The link, e.g. tel:+358-40-123-4567 (its number: digits with an optional leading
        /// +; visual separators are ignored; ;ext= is not dialled).
        link: String,
        /// The server's WebSocket URL. [default: from the port and listen settings]
        #[arg(long, env = "BAPIWS_URL")]
        url: Option<String>,
        /// Report on stderr and stdout only: no notification, no dialog box (a
        /// confirmation is then asked on the terminal).
        #[arg(long)]
        no_notify: bool,
        #[command(flatten)]
        settings: Box<ServeArgs>,
    },
    /// Open tel:, callto:, sip: and sips: links with bapiws (`bapiws dial`), or stop
    /// doing so, for this user: `enable` (Linux: a desktop entry made the default with
    /// xdg-mime; Windows: the URL protocol keys under HKCU\Software\Classes, or with
    /// --machine under HKLM for every user), `disable`, `status`.
    Handler {
        #[command(subcommand)]
        action: HandlerAction,
    },
    /// Keep the built-in SIP phone's password in the system's credential store (the
    /// Secret Service on Linux, the Credential Manager on Windows) under service `bapiws`
    /// and user the account, for `[sip] password_store = "keyring"`. Takes the settings of
    /// `serve` (the account). Exit codes: 0 done, 1 the store cannot be reached or
    /// refused, 2 usage or configuration error (no sip account, an empty or unusable
    /// password).
    Sip {
        #[command(subcommand)]
        action: SipAction,
    },
    /// Drive the simulated phone.
    Sim {
        #[command(subcommand)]
        action: SimAction,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum AutostartAction {
    /// Start `bapiws serve` (this program) at login.
    Enable,
    /// Do not start it at login any more.
    Disable,
    /// Show whether it starts at login, and how.
    Status,
}

#[derive(Subcommand, Clone, Copy)]
enum HandlerAction {
    /// Make this program the handler of phone links.
    Enable {
        /// Windows: for every user of this machine (HKLM, as the MSI; as an administrator).
        #[arg(long)]
        machine: bool,
    },
    /// Stop this program being the handler of phone links.
    Disable {
        /// Windows: remove the machine-wide keys (HKLM).
        #[arg(long)]
        machine: bool,
    },
    /// Show which program handles each kind of phone link.
    Status,
}

#[derive(Subcommand)]
enum SipAction {
    /// Store the password of the [sip] account: typed without echo at a terminal, else
    /// the first line of standard input (at most 4 KiB); replaces a stored one.
    SetPassword(Box<ServeArgs>),
    /// Remove the stored password of the [sip] account.
    ForgetPassword(Box<ServeArgs>),
}

#[derive(Subcommand)]
enum SimAction {
    /// A call comes in from NUMBER.
    Incoming {
        /// The caller's number.
        number: String,
    },
    /// A service-queue call comes in from NUMBER.
    Queue {
        /// The caller's number.
        number: String,
        /// The queue's number.
        #[arg(long, default_value = "")]
        queue_number: String,
        /// The queue's name.
        #[arg(long, default_value = bapiws::protocol::api::DEFAULT_QUEUE_NAME)]
        queue_name: String,
    },
    /// The far end answers an outbound call (the latest, or CALL_ID).
    Answer {
        /// Which call.
        call_id: Option<String>,
    },
    /// The far end hangs up (the latest call, or CALL_ID).
    Hangup {
        /// Which call.
        call_id: Option<String>,
        /// The reason reported in CallDisconnected.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Set the availability: Available, Busy, Away, BRB, DND, OffWork.
    Availability {
        /// The availability.
        state: String,
    },
    /// The phone goes offline (every call ends).
    Offline,
    /// The phone comes back online.
    Online,
}

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    match cli.command {
        Cmd::Serve(args) => {
            let code = serve(&args);
            // The log is written: a Windows console handler waiting for this may return.
            bapiws::platform::stop::finished();
            code
        }
        Cmd::Doctor(args) => {
            if bapiws::doctor::run(&args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Autostart { action } => autostart(action),
        Cmd::Stop => stop(),
        Cmd::Dial {
            link,
            url,
            no_notify,
            settings,
        } => dial(&link, url, no_notify, &settings),
        Cmd::Handler { action } => handler(action),
        Cmd::Sip { action } => sip(action),
        other => run_client(other),
    }
}

fn stop() -> ExitCode {
    use bapiws::platform::stop::{StopOutcome, stop_servers};
    match stop_servers() {
        StopOutcome::Stopped(n) => {
            println!("stopped {n} bapiws server{}", if n == 1 { "" } else { "s" });
            ExitCode::SUCCESS
        }
        StopOutcome::StillRunning { asked, running } => {
            say_error(&format!(
                "asked {asked} bapiws server(s) to stop; {running} still running after 15 s"
            ));
            ExitCode::FAILURE
        }
        StopOutcome::NoneRunning => {
            say_error("no bapiws server runs in this session");
            ExitCode::FAILURE
        }
        StopOutcome::NotHere => {
            say_error(
                "bapiws stop is for Windows; here stop the server with Ctrl-C or SIGTERM \
                 (kill PID), or `systemctl --user stop bapiws` for the package's user service",
            );
            ExitCode::from(2)
        }
    }
}

fn autostart(action: AutostartAction) -> ExitCode {
    use bapiws::autostart;
    let result = match action {
        AutostartAction::Enable => autostart::enable().map(|(location, command)| {
            println!("autostart enabled: {location}: {command}");
        }),
        AutostartAction::Disable => autostart::disable().map(|removed| {
            let status = autostart::status().ok();
            let location = status.as_ref().map(|s| s.location.clone()).unwrap_or_default();
            if removed {
                println!("autostart disabled: {location} removed");
            } else {
                println!("autostart was not enabled for this user; nothing to remove");
            }
            if let Some(m) = status.and_then(|s| s.machine_wide) {
                println!(
                    "note: a machine-wide entry still starts bapiws at login for every user: {} (the MSI's: uninstall it, or ask your administrator)",
                    client::for_terminal(&m)
                );
            }
        }),
        AutostartAction::Status => autostart::status().map(|s| {
            match &s.command {
                Some(c) if s.starts_this_program => {
                    println!("enabled: {}: {}", s.location, client::for_terminal(c));
                }
                Some(c) => println!(
                    "enabled, but for another program: {}: {} (run `bapiws autostart enable` to point it here)",
                    s.location,
                    client::for_terminal(c)
                ),
                None => println!("disabled for this user ({} is not there)", s.location),
            }
            if let Some(m) = &s.machine_wide {
                println!("machine-wide entry: {}", client::for_terminal(m));
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say_error(&format!("autostart: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn dial(link: &str, url: Option<String>, no_notify: bool, settings: &ServeArgs) -> ExitCode {
    use bapiws::linkdial::{self, exit, tell};
    let how = if no_notify {
        tell::Tell::Terminal
    } else {
        tell::Tell::Desktop
    };
    let config = match Config::load_without_store(settings) {
        Ok(c) => c,
        Err(e) => {
            tell::say(how, &format!("not calling: {e}"), true);
            return ExitCode::from(exit::USAGE);
        }
    };
    let url = match url.map_or_else(|| linkdial::server_url(&config), Ok) {
        Ok(u) => u,
        Err(e) => {
            tell::say(how, &format!("not calling: {e}"), true);
            return ExitCode::from(exit::USAGE);
        }
    };
    ExitCode::from(linkdial::dial(link, &url, config.link_confirm, how))
}

fn handler(action: HandlerAction) -> ExitCode {
    use bapiws::linkdial::handler::{self, Scope};
    let scope = |machine: bool| if machine { Scope::Machine } else { Scope::User };
    let result = match action {
        HandlerAction::Enable { machine } => {
            handler::enable(scope(machine)).map(|said| println!("{said}"))
        }
        HandlerAction::Disable { machine } => {
            handler::disable(scope(machine)).map(|said| println!("{said}"))
        }
        HandlerAction::Status => handler::status().map(|s| {
            for ((scheme, found), ours) in s.schemes.iter().zip(&s.ours) {
                let who = match found {
                    Some(h) if *ours => format!("bapiws ({})", client::for_terminal(h)),
                    Some(h) => format!("another program: {}", client::for_terminal(h)),
                    None => "no program".to_owned(),
                };
                println!("{scheme}: {who}");
            }
            match &s.entry {
                Some(e) => println!("entry: {}", client::for_terminal(e)),
                None => println!("entry: none for this program (run `bapiws handler enable`)"),
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say_error(&format!(
                "handler: {}",
                client::for_terminal(&e.to_string())
            ));
            ExitCode::FAILURE
        }
    }
}

/// `bapiws sip set-password` and `forget-password`: 0 done, 1 the store failed, 2 a
/// usage or configuration error. The password is never printed.
fn sip(action: SipAction) -> ExitCode {
    use bapiws::phone::BackendKind;
    use bapiws::phone::sip::PasswordFrom;
    use bapiws::platform::credentials::{self, StoreError};
    let (args, setting) = match &action {
        SipAction::SetPassword(a) => (a, true),
        SipAction::ForgetPassword(a) => (a, false),
    };
    let config = match Config::load_without_store(args) {
        Ok(c) => c,
        Err(e) => {
            say_error(&e.to_string());
            return ExitCode::from(2);
        }
    };
    if !config
        .backends
        .instances
        .values()
        .any(|k| *k == BackendKind::Sip)
    {
        say_error(
            "nothing configures the built-in SIP phone: set its account ([sip] account in the configuration file, --sip-account or BAPIWS_SIP_ACCOUNT)",
        );
        return ExitCode::from(2);
    }
    let sip = &config.backend_settings.sip;
    let account = client::for_terminal(&sip.account);
    let store = credentials::store_name();
    let failed = |e: StoreError| {
        let why = match e {
            StoreError::Unsupported => format!("{e}; use password_file instead"),
            StoreError::NoEntry => e.to_string(),
            e => format!("{e}; {}", credentials::store_fix()),
        };
        say_error(&format!("{store}: {}", client::for_terminal(&why)));
        ExitCode::FAILURE
    };
    if setting {
        let password = match credentials::read_secret_line(&format!("SIP password for {account}: "))
        {
            Ok(p) => p,
            Err(why) => {
                say_error(&format!("no password stored: {why}"));
                return ExitCode::from(2);
            }
        };
        if password.expose().is_empty() {
            say_error("no password stored: the password is empty");
            return ExitCode::from(2);
        }
        if !password.is_usable() {
            say_error(
                "no password stored: it is longer than 256 bytes or holds control characters, which the SIP phone cannot use",
            );
            return ExitCode::from(2);
        }
        if let Err(e) = credentials::write(&sip.account, &password) {
            return failed(e);
        }
        println!(
            "password stored for {account} in {store} (service {}, user {account})",
            credentials::SERVICE
        );
    } else {
        match credentials::remove(&sip.account) {
            Ok(true) => println!("password for {account} removed from {store}"),
            Ok(false) => {
                println!("no password was stored for {account} in {store}; nothing to remove")
            }
            Err(e) => return failed(e),
        }
    }
    if setting && sip.password_from != PasswordFrom::Keyring {
        println!(
            "note: bapiws serve uses it once [sip] password_store = \"keyring\" is set (or --sip-password-store keyring, BAPIWS_SIP_PASSWORD_STORE=keyring)"
        );
    }
    ExitCode::SUCCESS
}

/// Exits for a usage error (code 2). A bad value that came from a `BAPIWS_*` variable,
/// not from its flag on the command line, is reported under the variable's name.
fn usage_error(e: clap::Error) -> ! {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
    {
        let long = arg
            .trim_start_matches('-')
            .split([' ', '='])
            .next()
            .unwrap_or("")
            .to_owned();
        let on_command_line = std::env::args()
            .any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
        let command = Cli::command();
        let env = command
            .get_subcommands()
            .flat_map(|c| c.get_arguments())
            .find(|a| a.get_long() == Some(long.as_str()))
            .and_then(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned());
        if let Some(env) = env
            && !on_command_line
            && let Ok(value) = std::env::var(&env)
        {
            let why = e
                .to_string()
                .lines()
                .next()
                .and_then(|l| l.rsplit_once("': "))
                .map(|(_, why)| why.to_owned())
                .unwrap_or_default();
            say_error(&format!(
                "the variable {env}={}: not a valid value (it sets --{long}): {why}",
                client::for_terminal(&value)
            ));
            std::process::exit(2);
        }
    }
    e.exit()
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            say_error(&e.to_string());
            return ExitCode::from(2);
        }
    };
    // Dropped last (after the runtime): waits a moment for the last lines to be written.
    let mut log_settings = bapiws::logging::Settings::new(config.log_level, config.log_dir.clone());
    log_settings.max_bytes_per_day = config.log_max_bytes_per_day;
    log_settings.keep_days = config.log_keep_days;
    let log = bapiws::logging::init(&log_settings);
    let log_path = log.file_path().to_owned();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Some((before, after)) = bapiws::platform::raise_open_file_limit() {
        tracing::info!(
            before,
            after,
            "raised the open-file limit to the hard limit"
        );
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            say_error(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let server = match Server::bind(&config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                say_error(&e.to_string());
                return ExitCode::FAILURE;
            }
        };
        // Listening for stop requests before the start-up line: whoever reads it may
        // send one at once.
        let signals = bapiws::platform::stop::StopSignals::listen();
        let urls: Vec<String> = server
            .local_addrs()
            .iter()
            .map(|a| format!("ws://{a}"))
            .collect();
        let file = config
            .file
            .as_ref()
            .map(|p| format!("; config {}", p.display()))
            .unwrap_or_default();
        let registry = config
            .registry
            .as_ref()
            .map(|r| format!("; registry {r}"))
            .unwrap_or_default();
        print_banner(format!(
            "bapiws {} listening on {}; default backend: {}; log file: {}{file}{registry}",
            env!("CARGO_PKG_VERSION"),
            urls.join(" and "),
            config.backends.default,
            log_path.display()
        ));
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen = %urls.join(" "),
            default_backend = %config.backends.default,
            origins = %config.access.origins,
            "started"
        );
        server
            .run(shutdown_signal(signals, args.exit_on_stdin_close))
            .await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Prints a start-up error on stderr. A closed or broken stderr is no reason to panic
/// (exit code 101): the exit code still says what happened.
fn say_error(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "bapiws: {message}");
}

/// Prints the start-up line on stdout from a thread of its own: a stdout that is closed
/// (the reader of a pipe gone) is logged and ignored, and one that blocks (a terminal
/// stopped with Ctrl-S, a pipe nobody reads) holds up only that thread, never the server.
fn print_banner(line: String) {
    fn print(line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "cannot print the start-up line on stdout");
        }
    }
    let copy = line.clone();
    let spawned = std::thread::Builder::new()
        .name("bapiws-banner".into())
        .spawn(move || print(&copy));
    if spawned.is_err() {
        print(&line);
    }
}

/// Waits for an event that stops the server (Ctrl-C; SIGTERM, SIGHUP on Unix; Ctrl-Break,
/// console close, logoff, shutdown on Windows): each shuts down cleanly, closing clients
/// with 1001.
/// With `stdin_close`, also when standard input reaches its end.
async fn shutdown_signal(mut signals: bapiws::platform::stop::StopSignals, stdin_close: bool) {
    let closed = async {
        if stdin_close {
            stdin_closed().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let why = tokio::select! {
        event = signals.next() => event.name(),
        () = closed => "stdin closed",
    };
    tracing::info!(signal = why, "shutting down");
}

/// Completes when standard input reaches its end (or cannot be read); what is read is
/// discarded, a buffer at a time.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("bapiws-stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch standard input; --exit-on-stdin-close has no effect");
            std::future::pending::<()>().await;
        }
    }
}

fn run_client(cmd: Cmd) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bapiws: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(client_command(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bapiws: {}", client::for_terminal(&e.to_string()));
            if matches!(e, ClientError::Rpc { code: -32007, .. }) {
                eprintln!("bapiws: name one with --call ID (`bapiws calls` lists the ids)");
            }
            // 1: the server answered with an error; 2 is clap's, for usage errors; 3: no
            // server reached, or the connection failed.
            match e {
                ClientError::Rpc { .. } => ExitCode::from(1),
                _ => ExitCode::from(3),
            }
        }
    }
}

async fn client_command(cmd: Cmd) -> Result<(), ClientError> {
    let (args, default_backend) = match &cmd {
        Cmd::Sim { client, .. } => (client.clone(), Some("sim")),
        Cmd::State(c) | Cmd::Calls(c) | Cmd::Mute(c) | Cmd::Unmute(c) => (c.clone(), None),
        Cmd::Call { client, .. }
        | Cmd::Watch { client, .. }
        | Cmd::Answer { client, .. }
        | Cmd::Hangup { client, .. }
        | Cmd::Hold { client, .. }
        | Cmd::Resume { client, .. }
        | Cmd::Transfer { client, .. }
        | Cmd::Dtmf { client, .. } => (client.clone(), None),
        Cmd::Serve(_)
        | Cmd::Doctor(_)
        | Cmd::Stop
        | Cmd::Autostart { .. }
        | Cmd::Dial { .. }
        | Cmd::Handler { .. }
        | Cmd::Sip { .. } => return Ok(()),
    };
    let mut c = Client::connect(&args.url).await?;
    let result = run_on(&mut c, cmd, &args, default_backend).await;
    let _ = c.close(None).await;
    result
}

async fn run_on(
    c: &mut Client,
    cmd: Cmd,
    args: &ClientArgs,
    default_backend: Option<&str>,
) -> Result<(), ClientError> {
    if let Some(backend) = args.backend.as_deref().or(default_backend) {
        c.call("Init", json!([backend])).await?;
    }
    match cmd {
        Cmd::State(_) => println!(
            "{}",
            client::for_terminal(&text(&c.call("GetState", json!([])).await?))
        ),
        Cmd::Call { number, .. } => {
            c.call("CallOut", json!([number])).await?;
            println!("Calling {number}.");
        }
        Cmd::Answer { call, .. } => {
            c.call("Answer", opt(call.id)).await?;
            println!("Answered.");
        }
        Cmd::Hangup { call, .. } => {
            c.call("HangUp", opt(call.id)).await?;
            println!("Hung up.");
        }
        Cmd::Hold { call, .. } => {
            c.call("Call.Hold", opt(call.id)).await?;
            println!("On hold.");
        }
        Cmd::Resume { call, .. } => {
            c.call("Call.Resume", opt(call.id)).await?;
            println!("Resumed.");
        }
        Cmd::Transfer { number, call, .. } => {
            c.call("Call.Transfer", with_call(number.as_str(), call.id))
                .await?;
            println!("Transferred to {}.", client::for_terminal(&number));
        }
        Cmd::Dtmf { digits, call, .. } => {
            c.call("Call.SendDtmf", with_call(digits.as_str(), call.id))
                .await?;
            println!("Sent {}.", client::for_terminal(&digits));
        }
        Cmd::Mute(_) => {
            c.call("Call.Mute", json!([])).await?;
            println!("Muted.");
        }
        Cmd::Unmute(_) => {
            c.call("Call.Unmute", json!([])).await?;
            println!("Unmuted.");
        }
        Cmd::Calls(_) => print!(
            "{}",
            client::for_terminal(&client::calls_table(
                &c.call("GetActiveCalls", json!([])).await?
            ))
        ),
        Cmd::Watch {
            json, extensions, ..
        } => {
            if extensions {
                c.call(
                    "Events.Subscribe",
                    json!(
                        bapiws::protocol::api::EXTENSION_NOTIFICATIONS
                            .iter()
                            .map(|(name, _)| *name)
                            .collect::<Vec<_>>()
                    ),
                )
                .await?;
            }
            // A round trip first: once it is answered, the subscription is certainly live.
            let state = c.call("GetState", json!([])).await?;
            eprintln!(
                "Watching {} (phone {}) for notifications; Ctrl-C to stop.",
                args.url,
                client::for_terminal(&text(&state))
            );
            tokio::select! {
                r = client::watch(c, json) => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Cmd::Sim { action, .. } => {
            // The method, its params, and what to say when it is done (in the same words
            // as the other commands).
            let (method, params, done) = match action {
                SimAction::Incoming { number } => (
                    "Sim.IncomingCall",
                    json!([number]),
                    format!("A call from {} is ringing", client::for_terminal(&number)),
                ),
                SimAction::Queue {
                    number,
                    queue_number,
                    queue_name,
                } => (
                    "Sim.QueueCall",
                    json!([number, queue_number, queue_name]),
                    format!(
                        "A queue call from {} is ringing",
                        client::for_terminal(&number)
                    ),
                ),
                SimAction::Answer { call_id } => (
                    "Sim.RemoteAnswer",
                    opt(call_id),
                    "The far end answered".to_owned(),
                ),
                SimAction::Hangup { call_id, reason } => {
                    let id = call_id.map_or(Value::Null, Value::String);
                    let params = if id.is_null() {
                        json!({"reason": reason})
                    } else {
                        json!([id, reason])
                    };
                    ("Sim.RemoteHangUp", params, "The far end hung up".to_owned())
                }
                SimAction::Availability { state } => (
                    "Sim.SetAvailability",
                    json!([state]),
                    format!("Availability set to {}", client::for_terminal(&state)),
                ),
                SimAction::Offline => (
                    "Sim.SetOffline",
                    json!([]),
                    "The phone is offline".to_owned(),
                ),
                SimAction::Online => ("Sim.SetOnline", json!([]), "The phone is online".to_owned()),
            };
            let result = c.call(method, params).await?;
            match result.as_str() {
                Some(id) => println!("{done}; call id {}", client::for_terminal(id)),
                None => println!("{done}."),
            }
        }
        Cmd::Serve(_)
        | Cmd::Doctor(_)
        | Cmd::Stop
        | Cmd::Autostart { .. }
        | Cmd::Dial { .. }
        | Cmd::Handler { .. }
        | Cmd::Sip { .. } => {}
    }
    Ok(())
}

fn opt(v: Option<String>) -> Value {
    match v {
        Some(s) => json!([s]),
        None => json!([]),
    }
}

/// `[first]`, or `[first, callId]` when a call id is given.
fn with_call(first: &str, call_id: Option<String>) -> Value {
    match call_id {
        Some(id) => json!([first, id]),
        None => json!([first]),
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

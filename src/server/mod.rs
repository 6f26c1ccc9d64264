//! The server: listeners, the accept loop, limits and graceful shutdown.
//!
//! - `connection`: one WebSocket connection (handshake, read/write loop, idle timeout,
//!   closing handshake).
//! - `ws`: WebSocket frames in and out (RFC 6455), without I/O.
//! - `session`: one connection's protocol state, without sockets.
//! - `backends`: the registry of backends and aliases.
//! - `hub`: fan-out of a backend's notifications to its connections.

pub(crate) mod backends;
pub(crate) mod connection;
pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod session;
pub(crate) mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::access::Access;
use crate::config::Config;
use backends::Backends;

/// How many connections beyond the limit may wait for their 503 at once; more are
/// dropped without a reply.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long to wait for connections to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What every connection shares.
pub struct Shared {
    /// Who may connect: the Origin and Host rules.
    pub access: Access,
    /// Close a connection after this long without a message.
    pub idle_timeout: Duration,
    /// The largest message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// Notifications queued per connection before it counts as too slow.
    pub send_queue: usize,
    /// What every session applies (batch limit, rate limit, dial policy, audit masking).
    pub rules: Arc<session::Rules>,
    /// The backends.
    pub backends: Arc<Backends>,
    /// When the server started.
    pub started: std::time::Instant,
    /// Connections open now (WebSocket and HTTP).
    open: AtomicUsize,
    next_id: AtomicU64,
}

impl Shared {
    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn next_connection_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value is unusable.
    #[error("{0}")]
    Config(String),
    /// An address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; change the port (port, --port, BAPIWS_PORT) or the addresses (listen), or stop the program that holds it"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Whether a bind failed because the machine lacks the address or its family.
fn family_missing(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::AddrNotAvailable {
        return true;
    }
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::EAFNOSUPPORT)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    max_connections: usize,
}

impl Server {
    /// Binds every configured address. An address in use (or refused) stops the start,
    /// naming it; only an address the machine lacks (no IPv6) is logged and skipped, as
    /// long as another one can be bound.
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        let backends = Backends::new(
            config.backends.clone(),
            config.backend_settings.clone(),
            config.send_queue,
        );
        // Every backend starts with the server: no page can cause a process to start.
        backends.start_all();
        if config.access.origins.allows_any() {
            tracing::warn!(
                "every web page this user visits may connect and place calls: allowed_origins is \"*\" (as in the original); set allowed_origins to your applications' origins"
            );
        }
        if config.allow_remote && config.listen.iter().any(|ip| !ip.is_loopback()) {
            tracing::warn!(
                listen = ?config.listen,
                "LISTENING BEYOND LOOPBACK (allow_remote): anyone who can reach these addresses and passes the origin and host checks can drive this phone"
            );
        }
        let mut listeners = Vec::new();
        let mut skipped = None;
        for ip in &config.listen {
            let addr = SocketAddr::new(*ip, config.port);
            match TcpListener::bind(addr).await {
                Ok(l) => listeners.push(l),
                // This machine lacks the address or its family (no IPv6): skip it.
                Err(source) if family_missing(&source) => {
                    tracing::warn!(%addr, error = %source, "this machine has no such address; not listening on it");
                    skipped = Some(StartError::Bind { addr, source });
                }
                // Taken (another program, another bapiws) or refused: serving on the
                // other addresses only would send pages and the CLI to that program.
                Err(source) => return Err(StartError::Bind { addr, source }),
            }
        }
        if listeners.is_empty() {
            return Err(skipped
                .unwrap_or_else(|| StartError::Config("no listen address is configured".into())));
        }
        // Pages this server serves itself (the dialer) may always connect back to it.
        let mut access = config.access.clone();
        for l in &listeners {
            if let Ok(a) = l.local_addr() {
                access.origins.allow_loopback_port(a.port());
            }
        }
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                access,
                idle_timeout: config.idle_timeout,
                max_message_bytes: config.max_message_bytes,
                send_queue: config.send_queue,
                rules: Arc::new(session::Rules {
                    max_batch: config.max_batch,
                    full_numbers: config.log_full_numbers,
                    command_rate: config.command_rate,
                    command_burst: config.command_burst,
                    dial: config.access.dial.clone(),
                }),
                backends: Arc::new(backends),
                started: std::time::Instant::now(),
                open: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
            }),
            max_connections: config.max_connections,
        })
    }

    /// The addresses actually bound (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then closes every connection with 1001.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let refusals = Arc::new(AtomicUsize::new(0));
        // Start the default backend now, so its first state is ready for the first client.
        let _ = self.shared.backends.get_default();
        let mut accepts = JoinSet::new();
        for listener in self.listeners {
            accepts.spawn(accept_loop(
                listener,
                Arc::clone(&self.shared),
                Arc::clone(&permits),
                Arc::clone(&refusals),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        tracing::info!("shutting down: closing every connection");
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while accepts.join_next().await.is_some() {}
        })
        .await;
        // Then the backends: one that runs a program (baresip) stops it.
        for backend in self.shared.backends.running() {
            let stop = backend.phone.send(crate::phone::Command::Shutdown);
            if tokio::time::timeout(SHUTDOWN_GRACE * 2, stop)
                .await
                .is_err()
            {
                tracing::warn!(backend = %backend.name, "backend did not stop in time");
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    refusals: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, don't die.
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let permit = Arc::clone(&permits).try_acquire_owned().ok();
                let refusal_guard = if permit.is_none() {
                    if refusals.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSALS_IN_FLIGHT {
                        refusals.fetch_sub(1, Ordering::AcqRel);
                        continue;
                    }
                    Some(RefusalGuard(Arc::clone(&refusals)))
                } else {
                    None
                };
                let shared = Arc::clone(&shared);
                let stop = stop.clone();
                connections.spawn(async move {
                    shared.open.fetch_add(1, Ordering::Relaxed);
                    connection::serve(stream, addr, Arc::clone(&shared), permit, stop).await;
                    shared.open.fetch_sub(1, Ordering::Relaxed);
                    drop(refusal_guard);
                });
            }
        }
    }
    // Each connection sees the same stop signal and closes with 1001; wait for them.
    while connections.join_next().await.is_some() {}
}

struct RefusalGuard(Arc<AtomicUsize>);

impl Drop for RefusalGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

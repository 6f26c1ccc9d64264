//! Who may use the server and for what: the Origin rules (which web pages may connect),
//! the Host rules (a defence against DNS rebinding) and the dial policy (which numbers may
//! be dialled). Parsed once from the configuration and used
//! by the server on every request; this module depends on nothing else in the crate.

mod dial;
mod host;
mod origin;

pub use dial::{DialPolicy, PatternError, Refusal};
pub use host::{HostError, HostPolicy};
pub use origin::{OriginError, OriginPolicy};

/// Both rules, as the server applies them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Which pages may connect.
    pub origins: OriginPolicy,
    /// Which Host headers are accepted.
    pub hosts: HostPolicy,
    /// Which numbers may be dialled.
    pub dial: DialPolicy,
}

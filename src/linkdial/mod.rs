//! Click-to-call: `bapiws dial LINK` places the call of a `tel:`, `callto:` or `sip:`
//! link through the running server, and `bapiws handler` makes it the handler browsers
//! and other programs hand such links to.
//!
//! - [`uri`]: reading a link (what each part becomes; hostile links refused);
//! - [`handler`]: the registration (an XDG desktop entry made the default with
//!   `xdg-mime`; on Windows the URL protocol keys and the "Default apps" capabilities);
//! - [`tell`]: what the user who clicked sees (a notification, a dialog box to confirm,
//!   standard error).
//!
//! `dial` reads the number with the number rules of `CallOut`, asks the user first when
//! the `link_confirm` setting is on, and sends `CallOut` to the server on its configured
//! port (or `--url`); the server applies its dial policy as to any `CallOut`.

pub mod handler;
pub mod tell;
pub mod uri;

use serde_json::json;

use crate::client::{Client, ClientError};
use crate::config::Config;
use tell::Tell;

/// Exit codes of `bapiws dial` (0: the call was placed).
pub mod exit {
    /// The server refused (the dial policy, the phone offline or busy).
    pub const REFUSED: u8 = 1;
    /// A usage error, or a configuration that cannot be read.
    pub const USAGE: u8 = 2;
    /// No server reached.
    pub const UNREACHABLE: u8 = 3;
    /// The link holds no number that can be dialled.
    pub const NOT_A_NUMBER: u8 = 4;
    /// The user did not confirm the call (`link_confirm`).
    pub const NOT_CONFIRMED: u8 = 5;
}

/// The most characters of a link repeated in a message.
const SHOWN_LINK: usize = 80;

/// The server's address from its settings: the first listen address (a loopback one
/// for an unspecified one) and the port.
pub fn server_url(config: &Config) -> Result<String, String> {
    if config.port == 0 {
        return Err(
            "the configured port is 0 (any free port): give the server's address with --url or BAPIWS_URL"
                .to_owned(),
        );
    }
    let ip = config
        .listen
        .iter()
        .find(|ip| ip.is_loopback())
        .or(config.listen.first())
        .copied()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let ip = match ip {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    Ok(format!(
        "ws://{}",
        std::net::SocketAddr::new(ip, config.port)
    ))
}

/// A link as it may be repeated to the user: bounded (and escaped where it is shown).
fn shown_link(link: &str) -> String {
    let mut out: String = link.chars().take(SHOWN_LINK).collect();
    if link.chars().count() > SHOWN_LINK {
        out.push('…');
    }
    out
}

/// `bapiws dial`: places the call of `link` through the server at `url`; the exit code.
pub fn dial(link: &str, url: &str, confirm: bool, how: Tell) -> u8 {
    let parsed = match uri::parse(link) {
        Ok(l) => l,
        Err(e) => {
            tell::say(
                how,
                &format!("not calling: {e} ({})", shown_link(link)),
                true,
            );
            return exit::NOT_A_NUMBER;
        }
    };
    if confirm && !tell::confirm(how, &format!("Call {parsed}? A link asked for this call.")) {
        tell::say(how, &format!("Not calling {parsed}: not confirmed."), false);
        return exit::NOT_CONFIRMED;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tell::say(how, &format!("cannot start the runtime: {e}"), true);
            return exit::UNREACHABLE;
        }
    };
    let number = parsed.number.as_str().to_owned();
    let result = rt.block_on(async {
        let mut c = Client::connect(url).await?;
        let r = c.call("CallOut", json!([number])).await;
        let _ = c.close(None).await;
        r
    });
    match result {
        Ok(_) => {
            let mut said = format!("Calling {}.", parsed.number);
            if let Some(ext) = &parsed.extension {
                said.push_str(&format!(
                    " Extension {ext}: key it in when the call is answered."
                ));
            }
            tell::say(how, &said, false);
            0
        }
        Err(e) => {
            tell::say(how, &format!("cannot call {}: {e}", parsed.number), true);
            match e {
                ClientError::Rpc { .. } => exit::REFUSED,
                _ => exit::UNREACHABLE,
            }
        }
    }
}

//! The Origin check made at the WebSocket handshake.
//!
//! Rules: `*` allows every origin. A bare domain (`company.com`) allows that host and its
//! subdomains on any scheme and port. A full origin (`https://crm.company.com:8443`)
//! allows exactly that scheme, host and port (default ports filled in). A handshake with
//! no Origin header comes from a local program and is allowed. Hosts are compared
//! case-insensitively and without a trailing dot.

use std::fmt;

/// A parsed origin: scheme, host and port (the scheme's default when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// One entry of the allowed list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Any,
    Domain(String),
    Exact(Origin),
}

/// The allowed origins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPolicy {
    rules: Vec<Rule>,
}

/// Why an allowed-origins entry is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed origin {entry:?}: {why}")]
pub struct OriginError {
    entry: String,
    why: &'static str,
}

impl OriginPolicy {
    /// Parses the configured list.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<OriginPolicy, OriginError> {
        let rules = entries
            .iter()
            .map(|e| parse_rule(e.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(OriginPolicy { rules })
    }

    /// Also allows this server's own pages: `http://` on a loopback name or address with
    /// this port.
    pub fn allow_loopback_port(&mut self, port: u16) {
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            let rule = Rule::Exact(Origin {
                scheme: "http".into(),
                host: host.into(),
                port: Some(port),
            });
            if !self.rules.contains(&rule) {
                self.rules.push(rule);
            }
        }
    }

    /// Whether every origin is allowed (`*`).
    pub fn allows_any(&self) -> bool {
        self.rules.contains(&Rule::Any)
    }

    /// Whether a handshake with this Origin header (if any) is allowed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.rules.contains(&Rule::Any) {
            return true;
        }
        let Some(o) = parse_origin(origin.trim()) else {
            return false;
        };
        self.rules.iter().any(|rule| match rule {
            Rule::Any => true,
            Rule::Domain(d) => {
                o.host == *d
                    || (o.host.len() > d.len()
                        && o.host.ends_with(d.as_str())
                        && o.host.as_bytes()[o.host.len() - d.len() - 1] == b'.')
            }
            Rule::Exact(e) => *e == o,
        })
    }
}

impl fmt::Display for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .rules
            .iter()
            .map(|r| match r {
                Rule::Any => "*".to_owned(),
                Rule::Domain(d) => d.clone(),
                Rule::Exact(o) => match o.port {
                    Some(p) => format!("{}://{}:{p}", o.scheme, o.host),
                    None => format!("{}://{}", o.scheme, o.host),
                },
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

fn parse_rule(entry: &str) -> Result<Rule, OriginError> {
    let err = |why| OriginError {
        entry: entry.to_owned(),
        why,
    };
    if entry == "*" {
        return Ok(Rule::Any);
    }
    if entry.contains('*') {
        return Err(err(
            "wildcards are not supported; a bare domain (company.com) already allows its subdomains",
        ));
    }
    if entry.eq_ignore_ascii_case("null") {
        return Err(err(
            "the origin null (sandboxed frames, file: pages) is allowed only by \"*\"",
        ));
    }
    if entry.contains("://") {
        return parse_origin(entry)
            .filter(|o| valid_host(o.host.trim_start_matches('[').trim_end_matches(']')))
            .map(Rule::Exact)
            .ok_or_else(|| err("expected scheme://host[:port] with no path"));
    }
    let host = normalise_host(entry);
    if !valid_host(&host) || host.contains(':') {
        return Err(err(
            "a bare domain holds only letters, digits, '-' and '.'; to allow one port, write the whole origin (https://host:port)",
        ));
    }
    Ok(Rule::Domain(host))
}

/// A host name or address: letters, digits, `-`, `.` and `:` (IPv6), not starting or
/// ending with a dot.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
}

fn normalise_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Parses `scheme://host[:port]` (a trailing `/` is tolerated, nothing else after it).
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\']) {
        return None;
    }
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (h, tail) = after.split_once(']')?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        (format!("[{}]", h.to_ascii_lowercase()), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (normalise_host(h), Some(p.parse::<u16>().ok()?)),
            None => (normalise_host(rest), None),
        }
    };
    let bracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        });
    // Nothing but a host name's characters: a tab or a space inside must not let
    // `evil\t.company.com` pass for a subdomain of `company.com`.
    if !bracketed && (host.contains(':') || !valid_host(&host)) {
        return None;
    }
    let port = port.or_else(|| default_port(&scheme));
    Some(Origin { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_table() {
        let policy = OriginPolicy::parse(&[
            "company.com",
            "https://crm.partner.example:8443",
            "http://localhost:3000",
        ])
        .expect("valid");
        let cases: &[(Option<&str>, bool)] = &[
            (None, true),
            (Some("https://company.com"), true),
            (Some("http://company.com:8080"), true),
            (Some("https://crm.company.com"), true),
            (Some("https://a.b.company.com"), true),
            (Some("HTTPS://CRM.COMPANY.COM"), true),
            (Some("https://company.com."), true),
            (Some("https://company.com/"), true),
            (Some("https://evilcompany.com"), false),
            (Some("https://company.com.evil.net"), false),
            (Some("https://company.co"), false),
            (Some("null"), false),
            (Some(""), false),
            (Some("company.com"), false),
            (Some("https://crm.partner.example:8443"), true),
            (Some("https://crm.partner.example"), false),
            (Some("http://crm.partner.example:8443"), false),
            (Some("https://partner.example:8443"), false),
            (Some("http://localhost:3000"), true),
            (Some("http://localhost"), false),
            (Some("http://localhost:3001"), false),
            (Some("https://user@company.com"), false),
            (Some("https://company.com:99999"), false),
            (Some("https://company.com/path"), false),
        ];
        for (origin, want) in cases {
            assert_eq!(policy.allows(*origin), *want, "{origin:?}");
        }
    }

    #[test]
    fn star_allows_everything() {
        let policy = OriginPolicy::parse(&["*"]).expect("valid");
        for o in [
            None,
            Some("null"),
            Some("https://anything.example"),
            Some("garbage"),
        ] {
            assert!(policy.allows(o), "{o:?}");
        }
    }

    #[test]
    fn default_ports_are_filled_in() {
        let policy = OriginPolicy::parse(&["https://crm.example"]).expect("valid");
        assert!(policy.allows(Some("https://crm.example:443")));
        assert!(!policy.allows(Some("https://crm.example:444")));
        let v6 = OriginPolicy::parse(&["http://[::1]:8080"]).expect("valid");
        assert!(v6.allows(Some("http://[::1]:8080")));
        assert!(!v6.allows(Some("http://[::2]:8080")));
    }

    #[test]
    fn own_loopback_pages_can_be_allowed() {
        let mut policy = OriginPolicy::parse(&["company.com"]).expect("valid");
        assert!(!policy.allows(Some("http://127.0.0.1:9898")));
        policy.allow_loopback_port(9898);
        for o in [
            "http://127.0.0.1:9898",
            "http://localhost:9898",
            "http://[::1]:9898",
        ] {
            assert!(policy.allows(Some(o)), "{o}");
        }
        for o in [
            "http://127.0.0.1:9899",
            "https://127.0.0.1:9898",
            "http://localhost.evil.net:9898",
        ] {
            assert!(!policy.allows(Some(o)), "{o}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "company.com:8080",
            "https://",
            "https://a/b",
            "",
            "comp any.com",
            "ftp//x",
        ] {
            assert!(OriginPolicy::parse(&[bad]).is_err(), "{bad:?}");
        }
        let empty: [&str; 0] = [];
        let none = OriginPolicy::parse(&empty).expect("empty list is valid");
        assert!(!none.allows(Some("https://a.example")));
        assert!(none.allows(None));
    }
}

//! The Host check made on every request: a defence against DNS rebinding. A page on a
//! name that an attacker points at 127.0.0.1 still sends its own name as `Host`, so only
//! loopback names and addresses (and names the administrator lists) are accepted.

/// The accepted Host names besides loopback names and addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// Lower-cased names or addresses.
    allowed: Vec<String>,
}

/// Why an `allowed_hosts` entry is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host name or address")]
pub struct HostError(String);

impl HostPolicy {
    /// Parses the configured list of extra names.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<HostPolicy, HostError> {
        let mut allowed = Vec::new();
        for h in entries {
            let h = h.as_ref();
            let ok = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
            if !ok {
                return Err(HostError(h.to_owned()));
            }
            allowed.push(h.to_ascii_lowercase());
        }
        Ok(HostPolicy { allowed })
    }

    /// The extra names, lower-cased.
    pub fn extra(&self) -> &[String] {
        &self.allowed
    }

    /// Whether a request with this Host header (if any) is accepted.
    pub fn allows(&self, host: Option<&str>) -> bool {
        host_allowed(host, &self.allowed)
    }
}

/// Whether the Host header names this machine by a loopback name or address, or one of
/// the configured `allowed` hosts. Refusing other names defeats DNS rebinding: a page on
/// a name that an attacker points at 127.0.0.1 still sends its own name as Host.
fn host_allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return false };
    let Some(name) = host_name(host.trim()) else {
        return false;
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'))
        && v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    if name
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    allowed.contains(&name)
}

/// The name part of a Host header (`name`, `name:port`, `[v6]` or `[v6]:port`), or
/// `None` when it is malformed: an empty name, text after the `]`, or a port that is not
/// a number from 0 to 65535.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        port.parse::<u16>().ok()?;
    }
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table() {
        let allowed = vec!["phone.example.lan".to_owned(), "192.0.2.7".to_owned()];
        let cases: &[(Option<&str>, bool)] = &[
            (Some("127.0.0.1:9898"), true),
            (Some("127.0.0.1"), true),
            (Some("127.8.9.10:9898"), true),
            (Some("localhost:9898"), true),
            (Some("LOCALHOST"), true),
            (Some("localhost.:9898"), true),
            (Some("app.localhost:9898"), true),
            (Some("[::1]:9898"), true),
            (Some("[::1]"), true),
            (Some("phone.example.lan:9898"), true),
            (Some("192.0.2.7:9898"), true),
            (None, false),
            (Some(""), false),
            (Some("evil.example:9898"), false),
            (Some("localhost.evil.example"), false),
            (Some("127.0.0.1.evil.example"), false),
            (Some("[::2]:9898"), false),
            (Some("10.0.0.1:9898"), false),
            (Some("[::1"), false),
            (Some("0.0.0.0:9898"), false),
            (Some("[::1]evil.example"), false),
            (Some("[::1]:x"), false),
            (Some("[::1]:"), false),
            (Some("127.0.0.1:99999"), false),
            (Some("127.0.0.1:"), false),
            (Some(":9898"), false),
            (Some("[0:0:0:0:0:0:0:1]:9898"), true),
        ];
        for (host, want) in cases {
            assert_eq!(
                HostPolicy {
                    allowed: allowed.clone()
                }
                .allows(*host),
                *want,
                "{host:?}"
            );
        }
    }

    #[test]
    fn bad_entries() {
        assert!(HostPolicy::parse(&["a b"]).is_err());
        assert!(HostPolicy::parse(&[""]).is_err());
        assert_eq!(
            HostPolicy::parse(&["Phone.Example.LAN"]).map(|p| p.extra().to_vec()),
            Ok(vec!["phone.example.lan".to_owned()])
        );
    }
}

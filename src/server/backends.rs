//! The registry of backends: the named phones this server can run (one per backend kind,
//! plus configured extra instances), aliases for them, each started on first use and
//! shared by every connection that chose it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::hub::Hub;
use crate::phone::{self, BackendKind, BackendSettings, PhoneHandle};

/// Names that pages written for the original pass to `Init` (`lync` in the documented
/// API's own example; `vfw`, Voice for Windows, the original's default): aliases of the
/// default backend unless the configuration points them elsewhere.
pub const BUILTIN_ALIASES: &[&str] = &["lync", "vfw"];

/// A running backend.
pub struct Backend {
    /// Its name (`sim`, or an extra instance's name).
    pub name: Arc<str>,
    /// Where commands go.
    pub phone: PhoneHandle,
    /// Where its events fan out from.
    pub hub: Arc<Hub>,
}

/// Every backend this server can run, with aliases.
pub struct Backends {
    settings: BackendSettings,
    /// Lower-cased instance name → kind.
    instances: BTreeMap<String, BackendKind>,
    /// Lower-cased alias → instance name.
    aliases: BTreeMap<String, String>,
    default: String,
    queue_len: usize,
    running: Mutex<HashMap<String, Arc<Backend>>>,
}

/// Why a name does not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {name:?}; known: {}", known.join(", "))]
pub struct UnknownBackend {
    /// The name asked for.
    pub name: String,
    /// Every name that would have worked.
    pub known: Vec<String>,
}

/// What the registry is built from.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Settings of every backend.
    pub settings: BackendSettings,
    /// Extra independent instances: name → kind name.
    pub extra: BTreeMap<String, String>,
    /// Aliases: alias → backend or instance name.
    pub aliases: BTreeMap<String, String>,
    /// Name of the default backend.
    pub default: String,
    /// Notifications queued per connection.
    pub queue_len: usize,
}

impl Backends {
    /// Builds the registry; fails on a name that resolves to nothing.
    pub fn new(config: RegistryConfig) -> Result<Backends, UnknownBackend> {
        let mut instances: BTreeMap<String, BackendKind> = BackendKind::ALL
            .iter()
            .map(|&(n, k)| (n.to_owned(), k))
            .collect();
        for (name, kind) in &config.extra {
            let kind = BackendKind::by_name(kind).ok_or_else(|| UnknownBackend {
                name: kind.clone(),
                known: BackendKind::ALL
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .collect(),
            })?;
            instances.insert(name.to_ascii_lowercase(), kind);
        }
        let mut registry = Backends {
            settings: config.settings,
            instances,
            aliases: BTreeMap::new(),
            default: String::new(),
            queue_len: config.queue_len,
            running: Mutex::new(HashMap::new()),
        };
        for (alias, target) in &config.aliases {
            let instance = registry.resolve(target)?;
            registry
                .aliases
                .insert(alias.to_ascii_lowercase(), instance);
        }
        registry.default = registry.resolve(&config.default)?;
        for alias in BUILTIN_ALIASES {
            if !registry.instances.contains_key(*alias) && !registry.aliases.contains_key(*alias) {
                registry
                    .aliases
                    .insert((*alias).to_owned(), registry.default.clone());
            }
        }
        Ok(registry)
    }

    /// Every name Init accepts: backends, then aliases.
    pub fn names(&self) -> Vec<String> {
        self.instances
            .keys()
            .chain(self.aliases.keys())
            .cloned()
            .collect()
    }

    /// Every backend instance with its kind's name.
    pub fn instances(&self) -> Vec<(String, &'static str)> {
        self.instances
            .iter()
            .map(|(n, k)| (n.clone(), k.name()))
            .collect()
    }

    /// The aliases: alias → backend.
    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// Finds a backend by name or alias, case-insensitively; returns its instance name.
    pub fn resolve(&self, name: &str) -> Result<String, UnknownBackend> {
        let lower = name.to_ascii_lowercase();
        if self.instances.contains_key(&lower) {
            return Ok(lower);
        }
        self.aliases
            .get(&lower)
            .cloned()
            .ok_or_else(|| UnknownBackend {
                name: name.to_owned(),
                known: self.names(),
            })
    }

    /// The default backend's instance name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The running backend of this (resolved) instance name, started on first use.
    /// Returns `None` for a name [`Backends::resolve`] did not return.
    pub fn get(&self, instance: &str) -> Option<Arc<Backend>> {
        let kind = *self.instances.get(instance)?;
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = running.entry(instance.to_owned()).or_insert_with(|| {
            tracing::info!(backend = instance, kind = kind.name(), "starting backend");
            let hub = Hub::new(self.queue_len);
            let phone = phone::spawn(kind, &self.settings, Arc::clone(&hub) as phone::Events);
            Arc::new(Backend {
                name: instance.into(),
                phone,
                hub,
            })
        });
        Some(Arc::clone(entry))
    }

    /// The default backend, started on first use.
    pub fn get_default(&self) -> Arc<Backend> {
        match self.get(&self.default) {
            Some(b) => b,
            // `default` was resolved in `new`, so this cannot happen; fall back to the
            // simulated phone rather than panic.
            None => self.spawn_fallback(),
        }
    }

    fn spawn_fallback(&self) -> Arc<Backend> {
        let hub = Hub::new(self.queue_len);
        let phone = phone::spawn(
            BackendKind::Sim,
            &self.settings,
            Arc::clone(&hub) as phone::Events,
        );
        Arc::new(Backend {
            name: "sim".into(),
            phone,
            hub,
        })
    }

    /// The backends started so far.
    pub fn running(&self) -> Vec<Arc<Backend>> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Backends {
        Backends::new(RegistryConfig {
            extra: BTreeMap::from([("Agent2".to_owned(), "sim".to_owned())]),
            aliases: BTreeMap::from([
                ("lync".to_owned(), "sim".to_owned()),
                ("skype".to_owned(), "agent2".to_owned()),
            ]),
            default: "LYNC".into(),
            queue_len: 8,
            ..RegistryConfig::default()
        })
        .expect("valid registry")
    }

    #[test]
    fn names_resolve_case_insensitively() {
        let r = registry();
        let cases = [
            ("sim", Ok("sim")),
            ("SIM", Ok("sim")),
            ("Lync", Ok("sim")),
            ("agent2", Ok("agent2")),
            ("SKYPE", Ok("agent2")),
            ("", Err(())),
            ("voice", Err(())),
        ];
        for (name, want) in cases {
            assert_eq!(
                r.resolve(name).map_err(|_| ()),
                want.map(str::to_owned),
                "{name}"
            );
        }
        assert_eq!(r.default_name(), "sim");
        assert_eq!(
            r.names(),
            vec!["agent2", "baresip", "sim", "lync", "skype", "vfw"]
        );
        assert_eq!(r.resolve("VfW").ok().as_deref(), Some("sim"), "built in");
        let err = r.resolve("voice").expect_err("unknown");
        assert_eq!(err.known, r.names());
    }

    #[test]
    fn builtin_aliases_follow_the_default_unless_configured() {
        let r = Backends::new(RegistryConfig {
            extra: BTreeMap::from([("agent2".to_owned(), "sim".to_owned())]),
            aliases: BTreeMap::from([("vfw".to_owned(), "baresip".to_owned())]),
            default: "agent2".into(),
            ..RegistryConfig::default()
        })
        .expect("valid registry");
        assert_eq!(r.resolve("lync").ok().as_deref(), Some("agent2"));
        assert_eq!(r.resolve("vfw").ok().as_deref(), Some("baresip"));
    }

    #[test]
    fn bad_targets_are_refused() {
        let bad_alias = RegistryConfig {
            aliases: BTreeMap::from([("lync".to_owned(), "nothing".to_owned())]),
            default: "sim".into(),
            ..RegistryConfig::default()
        };
        assert!(Backends::new(bad_alias).is_err());
        let bad_kind = RegistryConfig {
            extra: BTreeMap::from([("x".to_owned(), "nothing".to_owned())]),
            default: "sim".into(),
            ..RegistryConfig::default()
        };
        assert!(Backends::new(bad_kind).is_err());
    }

    #[tokio::test]
    async fn instances_are_shared_and_lazy() {
        let r = registry();
        assert!(r.running().is_empty());
        let a = r.get("sim").expect("known");
        let b = r.get(&r.resolve("lync").expect("alias")).expect("known");
        assert!(Arc::ptr_eq(&a, &b));
        let c = r.get("agent2").expect("known");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(r.running().len(), 2);
        assert!(r.get("nothing").is_none());
    }
}

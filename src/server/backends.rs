//! The running backends: the named phones this server can run ([`BackendNames`], checked
//! by the configuration), each started on first use and shared by every connection that
//! chose it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::hub::Hub;
pub use crate::phone::UnknownBackend;
use crate::phone::{self, BackendKind, BackendNames, BackendSettings, PhoneHandle};

/// A running backend.
pub struct Backend {
    /// Its name (`sim`, or an extra instance's name).
    pub name: Arc<str>,
    /// Where commands go.
    pub phone: PhoneHandle,
    /// Where its events fan out from.
    pub hub: Arc<Hub>,
}

/// Every backend this server can run.
pub struct Backends {
    names: BackendNames,
    settings: BackendSettings,
    queue_len: usize,
    running: Mutex<HashMap<String, Arc<Backend>>>,
}

impl Backends {
    /// The registry; connections' notification queues hold `queue_len` messages.
    pub fn new(names: BackendNames, settings: BackendSettings, queue_len: usize) -> Backends {
        Backends {
            names,
            settings,
            queue_len,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Every name Init accepts: backends, then aliases.
    pub fn names(&self) -> Vec<String> {
        self.names.names()
    }

    /// Every backend instance with its kind's name.
    pub fn instances(&self) -> Vec<(String, &'static str)> {
        self.names
            .instances
            .iter()
            .map(|(n, k)| (n.clone(), k.name()))
            .collect()
    }

    /// The aliases: alias → backend.
    pub fn aliases(&self) -> &std::collections::BTreeMap<String, String> {
        &self.names.aliases
    }

    /// Finds a backend by name or alias, case-insensitively; returns its instance name.
    pub fn resolve(&self, name: &str) -> Result<String, UnknownBackend> {
        self.names.resolve(name)
    }

    /// The default backend's instance name.
    pub fn default_name(&self) -> &str {
        &self.names.default
    }

    /// The running backend of this (resolved) instance name, started on first use.
    /// Returns `None` for a name [`Backends::resolve`] did not return.
    pub fn get(&self, instance: &str) -> Option<Arc<Backend>> {
        let kind = self.names.kind(instance)?;
        Some(self.start(instance, kind))
    }

    /// The default backend, started on first use.
    pub fn get_default(&self) -> Arc<Backend> {
        self.start(&self.names.default, self.names.default_kind())
    }

    fn start(&self, instance: &str, kind: BackendKind) -> Arc<Backend> {
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
        Arc::clone(entry)
    }

    /// Starts every backend this server runs, so that none is started later because a
    /// page asked for it (and a managed baresip is registered before the first page).
    pub fn start_all(&self) {
        for (name, kind) in &self.names.instances {
            self.start(name, *kind);
        }
    }

    /// Whether `name` is a backend this server leaves out because nothing configures it.
    pub fn is_unconfigured(&self, name: &str) -> bool {
        self.names.is_unconfigured(name)
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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn names(
        extra: &[(&str, &str)],
        aliases: &[(&str, &str)],
        default: &str,
    ) -> Result<BackendNames, crate::settings::SettingError> {
        BackendNames::build(
            &pairs(extra),
            &pairs(aliases),
            Some(default),
            // baresip where it runs (not on Windows).
            &[BackendKind::Baresip][..usize::from(BackendKind::Baresip.available_here())],
        )
    }

    fn registry() -> Backends {
        let names = names(
            &[("Agent2", "sim")],
            &[("lync", "sim"), ("skype", "agent2")],
            "LYNC",
        )
        .expect("valid registry");
        Backends::new(names, BackendSettings::default(), 8)
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
        let mut all = vec!["agent2", "baresip", "sim", "lync", "skype", "vfw"];
        if !BackendKind::Baresip.available_here() {
            all.retain(|n| *n != "baresip");
        }
        assert_eq!(r.names(), all);
        assert_eq!(r.resolve("VfW").ok().as_deref(), Some("sim"), "built in");
        let err = r.resolve("voice").expect_err("unknown");
        assert_eq!(err.known, r.names());
    }

    #[test]
    fn builtin_aliases_follow_the_default_unless_configured() {
        // (An alias to baresip only where baresip runs.)
        let (vfw, to) = if BackendKind::Baresip.available_here() {
            ("vfw", "baresip")
        } else {
            ("vfw", "sim")
        };
        let r = names(&[("agent2", "sim")], &[(vfw, to)], "agent2").expect("valid registry");
        assert_eq!(r.resolve("lync").ok().as_deref(), Some("agent2"));
        assert_eq!(r.resolve("vfw").ok().as_deref(), Some(to));
    }

    #[test]
    fn bad_targets_are_refused() {
        let bad_alias = names(&[], &[("lync", "nothing")], "sim");
        assert!(bad_alias.is_err());
        let bad_kind = names(&[("x", "nothing")], &[], "sim");
        assert!(bad_kind.is_err());
    }

    #[tokio::test]
    async fn instances_are_shared() {
        let r = registry();
        let a = r.get("sim").expect("known");
        let b = r.get(&r.resolve("lync").expect("alias")).expect("known");
        assert!(Arc::ptr_eq(&a, &b));
        let c = r.get("agent2").expect("known");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(r.running().len(), 2);
        assert!(r.get("nothing").is_none());
    }
}

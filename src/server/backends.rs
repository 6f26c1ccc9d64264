//! The registry of backends: names and aliases, created lazily, shared by every
//! connection that chose them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::hub::Hub;
use crate::phone::{self, BackendKind, BackendSettings, PhoneHandle};

/// A running backend.
pub struct Backend {
    /// Its canonical name (`sim`, …).
    pub name: &'static str,
    /// Where commands go.
    pub phone: PhoneHandle,
    /// Where its events fan out from.
    pub hub: Arc<Hub>,
}

/// Every backend this server can run, with aliases.
pub struct Backends {
    settings: BackendSettings,
    /// Lower-cased alias → kind.
    aliases: HashMap<String, BackendKind>,
    default: BackendKind,
    queue_len: usize,
    running: Mutex<HashMap<&'static str, Arc<Backend>>>,
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

impl Backends {
    /// A registry with `aliases` (alias → backend name) and a default backend name.
    pub fn new(
        settings: BackendSettings,
        aliases: &BTreeMap<String, String>,
        default: &str,
        queue_len: usize,
    ) -> Result<Backends, UnknownBackend> {
        let mut registry = Backends {
            settings,
            aliases: HashMap::new(),
            default: BackendKind::Sim,
            queue_len,
            running: Mutex::new(HashMap::new()),
        };
        for (alias, target) in aliases {
            let kind = registry.resolve(target)?;
            registry.aliases.insert(alias.to_ascii_lowercase(), kind);
        }
        registry.default = registry.resolve(default)?;
        Ok(registry)
    }

    /// Every name Init accepts: backends, then aliases.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = BackendKind::ALL
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        let mut aliases: Vec<String> = self.aliases.keys().cloned().collect();
        aliases.sort();
        names.extend(aliases);
        names
    }

    /// Finds a backend by name or alias, case-insensitively.
    pub fn resolve(&self, name: &str) -> Result<BackendKind, UnknownBackend> {
        BackendKind::by_name(name)
            .or_else(|| self.aliases.get(&name.to_ascii_lowercase()).copied())
            .ok_or_else(|| UnknownBackend {
                name: name.to_owned(),
                known: self.names(),
            })
    }

    /// The default backend's kind.
    pub fn default_kind(&self) -> BackendKind {
        self.default
    }

    /// The running backend of this kind, started on first use.
    pub fn get(&self, kind: BackendKind) -> Arc<Backend> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = running.entry(kind.name()).or_insert_with(|| {
            tracing::info!(backend = kind.name(), "starting backend");
            let (phone, events) = phone::spawn(kind, &self.settings);
            Arc::new(Backend {
                name: kind.name(),
                phone,
                hub: Hub::spawn(events, self.queue_len),
            })
        });
        Arc::clone(entry)
    }

    /// The backends started so far.
    pub fn running(&self) -> Vec<Arc<Backend>> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.values().cloned().collect()
    }
}

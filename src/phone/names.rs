//! The names `Init` accepts: every backend instance (one per kind, plus configured extra
//! instances such as a second simulated phone) with its kind, aliases, and the default.
//! Checked once, from the configuration; the server only looks names up.

use std::collections::BTreeMap;

use super::BackendKind;
use crate::settings::SettingError;

/// Names that pages written for the original pass to `Init` (`lync` in the documented
/// API's own example; `vfw`, Voice for Windows, the original's default): aliases of the
/// default backend unless the configuration points them elsewhere.
pub const BUILTIN_ALIASES: &[&str] = &["lync", "vfw"];

/// Every backend instance and alias, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendNames {
    /// Instance name → kind.
    pub instances: BTreeMap<String, BackendKind>,
    /// Alias → instance name.
    pub aliases: BTreeMap<String, String>,
    /// The default instance.
    pub default: String,
    /// Kinds this server does not run because nothing configures them (`baresip` with no
    /// setting): `Init` names them in its error.
    pub unconfigured: Vec<String>,
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

impl Default for BackendNames {
    fn default() -> Self {
        let mut names = BackendNames {
            instances: BackendKind::ALL
                .iter()
                .filter(|(_, k)| k.available_here())
                .map(|&(n, k)| (n.to_owned(), k))
                .collect(),
            aliases: BTreeMap::new(),
            default: "sim".to_owned(),
            unconfigured: Vec::new(),
        };
        names.add_builtin_aliases();
        names
    }
}

/// The error for settings of a kind that does not run on this operating system.
fn not_here(key: &str, kind: BackendKind) -> SettingError {
    SettingError::new(
        key,
        format!(
            "the {} backend does not run on this operating system (it runs on Linux; see docs/windows.md); remove its settings",
            kind.name()
        ),
    )
}

impl BackendNames {
    /// Checks extra instances (`name`, `kind`), aliases (`alias`, `backend`) and the
    /// default (a backend or alias; `sim` when `None`). Errors name the file key
    /// (`extra_backends.NAME`, `aliases.ALIAS`, `default_backend`). A kind that runs only
    /// when configured is kept when it is in `configured` (it has settings) or the default
    /// or an alias names it; otherwise it is left out.
    pub fn build(
        extra: &[(String, String)],
        aliases: &[(String, String)],
        default: Option<&str>,
        configured: &[BackendKind],
    ) -> Result<BackendNames, SettingError> {
        if let Some(k) = configured.iter().find(|k| !k.available_here()) {
            return Err(not_here(k.name(), *k));
        }
        let mut names = BackendNames::default();
        names.aliases.clear();
        for (name, kind) in extra {
            let err = |p: String| SettingError::new(format!("extra_backends.{name}"), p);
            if name.is_empty() || BackendKind::by_name(name).is_some() {
                return Err(err(format!(
                    "{name:?} is empty or a built-in backend's name"
                )));
            }
            match BackendKind::by_name(kind) {
                None => {
                    let kinds: Vec<&str> = BackendKind::ALL.iter().map(|(n, _)| *n).collect();
                    return Err(err(format!(
                        "unknown backend kind {kind:?}; kinds: {}",
                        kinds.join(", ")
                    )));
                }
                // Its settings (control port, SIP ports) are per server, not per instance.
                Some(BackendKind::Baresip) => {
                    return Err(err(
                        "only one baresip backend per server is supported; use an alias".into(),
                    ));
                }
                Some(k) if !k.available_here() => {
                    return Err(not_here(&format!("extra_backends.{name}"), k));
                }
                Some(k) => {
                    names.instances.insert(name.to_ascii_lowercase(), k);
                }
            }
        }
        for (alias, target) in aliases {
            let err = |p: String| SettingError::new(format!("aliases.{alias}"), p);
            let lower = alias.to_ascii_lowercase();
            if alias.is_empty() || names.instances.contains_key(&lower) {
                return Err(err(format!(
                    "{alias:?} is empty or already a backend's name"
                )));
            }
            let instance = target.to_ascii_lowercase();
            if !names.instances.contains_key(&instance) {
                return Err(err(format!(
                    "alias {alias:?} points to unknown backend {target:?}"
                )));
            }
            names.aliases.insert(lower, instance);
        }
        if let Some(d) = default {
            names.default = names.resolve(d).map_err(|e| {
                SettingError::new(
                    "default_backend",
                    format!("unknown backend {d:?}; known: {}", e.known.join(", ")),
                )
            })?;
        }
        let mut wanted: Vec<BackendKind> = configured.to_vec();
        wanted.extend(names.kind(&names.default));
        wanted.extend(names.aliases.values().filter_map(|i| names.kind(i)));
        let left_out: Vec<String> = names
            .instances
            .iter()
            .filter(|(_, k)| k.only_when_configured() && !wanted.contains(k))
            .map(|(n, _)| n.clone())
            .collect();
        for name in &left_out {
            names.instances.remove(name);
        }
        names.unconfigured = left_out;
        names.add_builtin_aliases();
        Ok(names)
    }

    /// Whether `name` is a kind this server leaves out because nothing configures it.
    pub fn is_unconfigured(&self, name: &str) -> bool {
        self.unconfigured
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    fn add_builtin_aliases(&mut self) {
        for alias in BUILTIN_ALIASES {
            if !self.instances.contains_key(*alias) && !self.aliases.contains_key(*alias) {
                self.aliases
                    .insert((*alias).to_owned(), self.default.clone());
            }
        }
    }

    /// Every name Init accepts: backends, then aliases.
    pub fn names(&self) -> Vec<String> {
        self.instances
            .keys()
            .chain(self.aliases.keys())
            .cloned()
            .collect()
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

    /// The kind of an instance.
    pub fn kind(&self, instance: &str) -> Option<BackendKind> {
        self.instances.get(instance).copied()
    }

    /// The default instance's kind.
    pub fn default_kind(&self) -> BackendKind {
        self.kind(&self.default).unwrap_or(BackendKind::Sim)
    }
}

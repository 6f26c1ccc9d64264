//! The layers of the configuration and how they merge, generically: the file is read
//! into the same [`ServeArgs`] the flags fill, every key checked against the keys the
//! structs define (found by serialising their defaults, so no list is kept by hand), and
//! the flags laid over the file value by value. What came from where is kept for error
//! messages.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::registry::RegistryLayer;
use super::{ConfigError, ServeArgs};
use crate::settings::SettingError;

/// Flags over the registry over the file, merged, with what each layer set.
pub(super) struct Layers<'a> {
    /// The merged settings.
    pub merged: ServeArgs,
    flags: Value,
    registry: Option<(Value, RegistryLayer)>,
    file: Value,
    path: Option<&'a Path>,
}

impl<'a> Layers<'a> {
    /// Reads the file's text (if any) and lays the registry's settings (if any) and the
    /// flags over it.
    pub fn new(
        args: &ServeArgs,
        registry: Option<RegistryLayer>,
        text: Option<&str>,
        path: Option<&'a Path>,
    ) -> Result<Layers<'a>, ConfigError> {
        for (key, list, form) in [
            ("aliases", &args.aliases, "ALIAS=BACKEND"),
            ("extra_backends", &args.extra_backends, "NAME=KIND"),
        ] {
            if let Some(bad) = list.iter().find(|e| !e.contains('=')) {
                return Err(ConfigError::Setting {
                    key: key.into(),
                    problem: format!("{bad:?} is not {form}"),
                });
            }
        }
        let file_args = match text {
            Some(text) => parse_file(text, path.unwrap_or(Path::new("-")))?,
            None => ServeArgs::default(),
        };
        let internal = |problem: String| ConfigError::Setting {
            key: "config".into(),
            problem,
        };
        let flags = serde_json::to_value(args).map_err(|e| internal(e.to_string()))?;
        let file = serde_json::to_value(&file_args).map_err(|e| internal(e.to_string()))?;
        let mut merged = file.clone();
        let registry = match registry {
            None => None,
            Some(layer) => {
                let args: ServeArgs = toml::Value::Table(layer.table.clone()).try_into().map_err(
                    |e: toml::de::Error| ConfigError::Registry {
                        path: layer.path.clone(),
                        value: String::new(),
                        problem: e.message().to_owned(),
                    },
                )?;
                let value = serde_json::to_value(&args).map_err(|e| internal(e.to_string()))?;
                overlay(&mut merged, &value);
                Some((value, layer))
            }
        };
        overlay(&mut merged, &flags);
        let merged = serde_json::from_value(merged).map_err(|e| internal(e.to_string()))?;
        Ok(Layers {
            merged,
            flags,
            registry,
            file,
            path,
        })
    }

    /// The registry key that was read, if any.
    pub fn registry_path(&self) -> Option<String> {
        self.registry.as_ref().map(|(_, layer)| layer.path.clone())
    }

    /// What the registry layer did not read.
    pub fn warnings(&self) -> Vec<String> {
        self.registry
            .as_ref()
            .map(|(_, layer)| layer.warnings.clone())
            .unwrap_or_default()
    }

    /// The error for a setting, naming the file and key, or the flag and variable, that
    /// the value came from.
    pub fn error(&self, e: SettingError) -> ConfigError {
        let set = |v: &Value| lookup(v, &e.key).is_some_and(is_set);
        if !set(&self.flags)
            && let Some((value, layer)) = &self.registry
            && set(value)
        {
            // A pair's entry is named by its table's key.
            let table = e.key.split_once('.').map(|(t, _)| t);
            let name = layer
                .names
                .get(&e.key)
                .or_else(|| {
                    table.and_then(|t| {
                        layer
                            .names
                            .iter()
                            .find(|(k, _)| k.starts_with(&format!("{t}.")))
                            .map(|(_, v)| v)
                    })
                })
                .cloned()
                .unwrap_or_else(|| e.key.clone());
            return ConfigError::Registry {
                path: layer.path.clone(),
                value: name,
                problem: e.problem,
            };
        }
        match self.path {
            Some(path) if !set(&self.flags) && set(&self.file) => ConfigError::Key {
                path: path.to_owned(),
                key: e.key,
                problem: e.problem,
            },
            _ => {
                // A pair's flag is named by its table (`--alias`), not by its entry.
                let key = match e.key.split_once('.') {
                    Some((table @ ("aliases" | "extra_backends"), _)) => table.to_owned(),
                    _ => e.key,
                };
                ConfigError::Setting {
                    key,
                    problem: e.problem,
                }
            }
        }
    }

    /// The merged `NAME=VALUE` entries of a table such as `aliases`.
    pub fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let list = match key {
            "aliases" => &self.merged.aliases,
            _ => &self.merged.extra_backends,
        };
        Ok(list
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
            .collect())
    }
}

/// Lays every value `high` sets over `low`; tables merge key by key.
fn overlay(low: &mut Value, high: &Value) {
    match (low, high) {
        (Value::Object(low), Value::Object(high)) => {
            for (k, h) in high {
                match low.get_mut(k) {
                    Some(l) if l.is_object() && h.is_object() => overlay(l, h),
                    _ if h.is_null() => {}
                    _ => {
                        low.insert(k.clone(), h.clone());
                    }
                }
            }
        }
        (low, high) if !high.is_null() => *low = high.clone(),
        _ => {}
    }
}

/// Whether a layer sets a value: a table counts when it sets any of its keys.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(table) => table.values().any(is_set),
        _ => true,
    }
}

fn lookup<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(v, |v, k| v.get(k))
}

/// Every key the file accepts, as `key` or `table.key`, from the settings' own structs.
pub fn file_keys() -> Vec<String> {
    let mut keys = Vec::new();
    if let Ok(Value::Object(top)) = serde_json::to_value(ServeArgs::default()) {
        for (k, v) in top {
            match v {
                Value::Object(table) if !table.is_empty() => {
                    keys.extend(table.keys().map(|sub| format!("{k}.{sub}")));
                }
                _ => keys.push(k),
            }
        }
    }
    keys
}

/// Reads the file into [`ServeArgs`]: unknown keys and bad values are reported with the
/// key (and a suggestion for a misspelt one).
fn parse_file(text: &str, path: &Path) -> Result<ServeArgs, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            path: path.to_owned(),
            problem: format!(
                "{}\n(TOML: text needs quotes, key = \"value\"; numbers and true/false none; lists [\"a\", \"b\"])",
                e.to_string().trim()
            ),
        })?;
    let known = serde_json::to_value(ServeArgs::default()).unwrap_or(Value::Null);
    let key_error = |key: String, problem: String| ConfigError::Key {
        path: path.to_owned(),
        key,
        problem,
    };
    for (k, v) in &table {
        let nested = known
            .get(k)
            .and_then(Value::as_object)
            .filter(|t| !t.is_empty());
        match (known.get(k), nested, v) {
            (None, _, _) => return Err(key_error(k.clone(), unknown(k, &known))),
            (_, Some(fields), toml::Value::Table(t)) => {
                for (sub, v) in t {
                    let key = format!("{k}.{sub}");
                    if !fields.contains_key(sub) {
                        return Err(key_error(key, unknown(sub, &Value::Object(fields.clone()))));
                    }
                    let one = toml::Table::from_iter([(sub.clone(), v.clone())]);
                    check_one(toml::Table::from_iter([(
                        k.clone(),
                        toml::Value::Table(one),
                    )]))
                    .map_err(|p| key_error(key, p))?;
                }
            }
            _ => check_one(toml::Table::from_iter([(k.clone(), v.clone())]))
                .map_err(|p| key_error(k.clone(), p))?,
        }
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::File {
            path: path.to_owned(),
            problem: e.message().to_owned(),
        })
}

/// Reads a table holding one key, so that a bad value is blamed on its key.
pub(super) fn check_one(table: toml::Table) -> Result<(), String> {
    toml::Value::Table(table)
        .try_into::<ServeArgs>()
        .map(drop)
        .map_err(|e| in_words(e.message()))
}

/// serde's names of what was expected, in a user's words.
fn in_words(message: &str) -> String {
    let mut m = message.to_owned();
    for (serde, words) in [
        (
            "expected u16",
            "expected a whole number from 0 to 65535, without quotes",
        ),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295, without quotes",
        ),
        ("expected u64", "expected a whole number, without quotes"),
        ("expected usize", "expected a whole number, without quotes"),
        (
            "expected a boolean",
            "expected true or false, without quotes",
        ),
        (
            "expected a sequence",
            "expected a list, e.g. [\"a\", \"b\"]",
        ),
        (
            "expected a map",
            "expected a table, e.g. [aliases] with name = \"backend\" lines",
        ),
    ] {
        m = m.replace(serde, words);
    }
    m
}

fn unknown(key: &str, known: &Value) -> String {
    let names: Vec<&str> = known
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let close = names
        .iter()
        .map(|n| (distance(key, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min();
    let hint = close.map_or(String::new(), |(_, n)| format!(" (did you mean `{n}`?)"));
    format!("unknown key{hint}; known keys: {}", names.join(", "))
}

/// Edit distance between two keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// `NAME=VALUE` entries (flags) as a table (the file), and back.
pub(super) mod pairs {
    use super::BTreeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(entries: &[String], s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, &str> = entries
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(a, b)| (a.trim(), b.trim()))
            .collect();
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Ok(map.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        let known = serde_json::json!({"idle_timeout_secs": null, "port": null});
        assert!(unknown("idle_timout_secs", &known).contains("did you mean `idle_timeout_secs`"));
        assert!(!unknown("colour", &known).contains("did you mean"));
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn every_key_is_listed() {
        let keys = file_keys();
        for k in [
            "port",
            "aliases",
            "sim.answer_delay_ms",
            "baresip.ctrl_address",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
        assert!(!keys.iter().any(|x| x == "config" || x == "sim"));
    }
}

//! The registry layer (Windows): the settings the original reads from
//! `HKLM\Software\Benemen\BAPIWS` — `Port` and `AllowedOrigins` — and every other setting
//! under its file key's name; the same under `HKCU\Software\Benemen\BAPIWS` for the
//! user's own, where the administrator's key is silent. A value's name matches its key ignoring case and `_`, so
//! `AllowedOrigins`, `allowed_origins` and `IdleTimeoutSecs` all work; a backend's table
//! (`[sim]`) is a subkey (`…\BAPIWS\sim`). Text values are read as the file's values
//! would be (`9898`, `true`), else as text, else as a list split at commas, semicolons
//! and spaces (`AllowedOrigins` = `crm.example.com, https://desk.example.com`);
//! REG_DWORD and REG_QWORD are numbers, REG_MULTI_SZ a list. Values the server does not
//! know are reported as warnings, not refused: the original may have left its own there.
//!
//! Reading the registry is Windows code ([`crate::platform::windows`]); turning what was
//! read into a layer is portable, and tested everywhere.

// Used by `read` on Windows only; the tests use it everywhere.
#![cfg_attr(not(windows), allow(dead_code))]

use std::collections::BTreeMap;

use serde_json::Value;

use super::layers::check_one;
use super::{ConfigError, ServeArgs};
use crate::platform::{RegistryKey, RegistryValue};

/// Where the original keeps its settings, under HKEY_LOCAL_MACHINE.
pub const KEY: &str = r"Software\Benemen\BAPIWS";

/// The registry's settings as a file-shaped table, with where each came from.
#[derive(Debug, Default)]
pub(super) struct RegistryLayer {
    /// The key that was read, e.g. `HKLM\Software\Benemen\BAPIWS`.
    pub path: String,
    /// The settings, shaped like the file.
    pub table: toml::Table,
    /// Each setting's key (`port`, `sim.answer_delay_ms`) and the value it was read from
    /// (`Port`, `sim\AnswerDelayMs`).
    pub names: BTreeMap<String, String>,
    /// Values that were not read, and why.
    pub warnings: Vec<String>,
}

/// A name compared as its key: lower case, without `_` and `-`.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

impl RegistryLayer {
    /// Reads the settings of `HKLM\Software\Benemen\BAPIWS` (an administrator's, for
    /// every user) and of `HKCU\Software\Benemen\BAPIWS` (the user's own), `None` where
    /// there is no registry or neither key. Where both set a setting, the administrator's
    /// wins (see [`RegistryLayer::over`]). A key that exists but cannot be read is an error.
    pub fn read() -> Result<Option<RegistryLayer>, ConfigError> {
        #[cfg(windows)]
        {
            use crate::platform::windows::{Hive, read_key};
            let read = |hive: Hive| match read_key(hive, KEY) {
                Ok(Some(key)) => RegistryLayer::from_key(&key).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(ConfigError::Registry {
                    path: format!("{}\\{KEY}", hive.name()),
                    value: String::new(),
                    problem: format!("cannot be read: {e}"),
                }),
            };
            let machine = read(Hive::LocalMachine)?;
            let user = read(Hive::CurrentUser)?;
            Ok(RegistryLayer::over(machine, user))
        }
        #[cfg(not(windows))]
        {
            Ok(None)
        }
    }

    /// The machine's layer over the user's: each setting the machine's key has wins (a
    /// backend's table setting by setting), the user's fill the rest. The path names both
    /// keys when both were read.
    pub fn over(
        machine: Option<RegistryLayer>,
        user: Option<RegistryLayer>,
    ) -> Option<RegistryLayer> {
        let (machine, mut merged) = match (machine, user) {
            (None, None) => return None,
            (Some(one), None) | (None, Some(one)) => return Some(one),
            (Some(machine), Some(user)) => (machine, user),
        };
        for (key, value) in machine.table {
            match (merged.table.get_mut(&key), value) {
                (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => {
                    mine.extend(theirs);
                }
                (_, value) => {
                    merged.table.insert(key, value);
                }
            }
        }
        merged.names.extend(machine.names);
        let mut warnings = machine.warnings;
        warnings.append(&mut merged.warnings);
        merged.warnings = warnings;
        merged.path = format!("{} and {}", machine.path, merged.path);
        Some(merged)
    }

    /// Turns a key's values into settings; a value with a bad setting is an error naming
    /// the key and the value.
    pub fn from_key(key: &RegistryKey) -> Result<RegistryLayer, ConfigError> {
        let known = serde_json::to_value(ServeArgs::default()).unwrap_or(Value::Null);
        let known = known.as_object().cloned().unwrap_or_default();
        let mut layer = RegistryLayer {
            path: key.path.clone(),
            ..RegistryLayer::default()
        };
        for (name, value) in &key.values {
            let found = known
                .iter()
                .find(|(k, v)| folded(k) == folded(name) && !v.is_object());
            match found {
                Some((k, _)) => layer.add(&[k], name, value)?,
                None if name.is_empty() => {} // the key's default value, unused
                None => layer.warnings.push(format!(
                    "{}: value {name:?} is not a setting of bapiws and was not read",
                    key.path
                )),
            }
        }
        for (sub, why) in &key.skipped {
            layer.warnings.push(format!(
                "{}: subkey {sub:?} cannot be read and was not: {why}",
                key.path
            ));
        }
        for (sub, values) in &key.subkeys {
            let found = known
                .iter()
                .find(|(k, v)| folded(k) == folded(sub) && v.is_object());
            let Some((table, fields)) = found else {
                layer.warnings.push(format!(
                    "{}: subkey {sub:?} is not a table of bapiws and was not read",
                    key.path
                ));
                continue;
            };
            let fields = fields.as_object().cloned().unwrap_or_default();
            for (name, value) in values {
                let shown = format!("{sub}\\{name}");
                if fields.is_empty() {
                    // A table of NAME = VALUE entries (aliases, extra_backends).
                    layer.add(&[table, name], &shown, value)?;
                } else if let Some(field) = fields.keys().find(|f| folded(f) == folded(name)) {
                    layer.add(&[table, field], &shown, value)?;
                } else if !name.is_empty() {
                    layer.warnings.push(format!(
                        "{}: value {shown:?} is not a setting of bapiws and was not read",
                        key.path
                    ));
                }
            }
        }
        Ok(layer)
    }

    /// Adds one value under `path` (a key, or a table and its key), read as the first of
    /// its possible readings the setting accepts.
    fn add(
        &mut self,
        path: &[&String],
        shown: &str,
        value: &RegistryValue,
    ) -> Result<(), ConfigError> {
        let error = |problem: String| ConfigError::Registry {
            path: self.path.clone(),
            value: shown.to_owned(),
            problem,
        };
        let readings = readings(value).map_err(&error)?;
        let wrap = |v: toml::Value| -> toml::Table {
            match path {
                [table, inner] => toml::Table::from_iter([(
                    (*table).clone(),
                    toml::Value::Table(toml::Table::from_iter([((*inner).clone(), v)])),
                )]),
                _ => toml::Table::from_iter([(path[0].clone(), v)]),
            }
        };
        let mut first_problem = None;
        for reading in readings {
            let one = wrap(reading.clone());
            match check_one(one) {
                Ok(()) => {
                    let key = path
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(".");
                    match path {
                        [table, inner] => {
                            let entry = self
                                .table
                                .entry((*table).clone())
                                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                            if let toml::Value::Table(t) = entry {
                                t.insert((*inner).clone(), reading);
                            }
                        }
                        _ => {
                            self.table.insert(path[0].clone(), reading);
                        }
                    }
                    self.names.insert(key, shown.to_owned());
                    return Ok(());
                }
                Err(problem) => {
                    first_problem.get_or_insert(problem);
                }
            }
        }
        let shown_value = match value {
            RegistryValue::Text(s) => format!("{:?}", crate::settings::shown(s)),
            RegistryValue::Number(n) => n.to_string(),
            RegistryValue::List(l) => format!("{l:?}"),
            RegistryValue::Unsupported(_) => String::new(),
        };
        Err(error(format!(
            "{shown_value} is not a valid value: {}",
            first_problem
                .unwrap_or_default()
                .replace(", without quotes", "")
        )))
    }
}

/// The ways a value may be read, most specific first.
fn readings(value: &RegistryValue) -> Result<Vec<toml::Value>, String> {
    Ok(match value {
        RegistryValue::Number(n) => match i64::try_from(*n) {
            Ok(n) => vec![toml::Value::Integer(n)],
            Err(_) => vec![toml::Value::String(n.to_string())],
        },
        RegistryValue::List(items) => vec![toml::Value::Array(
            items.iter().cloned().map(toml::Value::String).collect(),
        )],
        RegistryValue::Text(text) => {
            let mut out = Vec::new();
            let trimmed = text.trim();
            if let Ok(t) = format!("v = {trimmed}").parse::<toml::Table>()
                && t.len() == 1
                && let Some(v) = t.get("v")
                && !v.is_table()
            {
                out.push(v.clone());
            }
            out.push(toml::Value::String(trimmed.to_owned()));
            out.push(toml::Value::Array(
                trimmed
                    .split([',', ';', ' ', '\t'])
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ));
            out
        }
        RegistryValue::Unsupported(kind) => {
            return Err(format!(
                "a value of registry type {kind} is not read; use REG_SZ (text), or REG_DWORD for a number"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn key(values: &[(&str, RegistryValue)]) -> RegistryKey {
        RegistryKey {
            path: format!("HKLM\\{KEY}"),
            values: values
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
            subkeys: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn text(s: &str) -> RegistryValue {
        RegistryValue::Text(s.to_owned())
    }

    fn resolve(args: &ServeArgs, file: Option<&str>, reg: &RegistryKey) -> Config {
        let layer = RegistryLayer::from_key(reg).expect("registry layer");
        Config::resolve_with(
            args,
            file,
            file.map(|_| "/x.toml".into()),
            Some(layer),
            false,
        )
        .expect("valid")
    }

    #[test]
    fn the_administrators_key_wins_over_the_users_setting_by_setting() {
        let mut machine = key(&[("Port", text("19501"))]);
        machine.subkeys = vec![("sip".into(), vec![("Registrar".into(), text("pbx:5060"))])];
        let mut user = key(&[("Port", text("19502")), ("IdleTimeoutSecs", text("77"))]);
        user.path = format!("HKCU\\{KEY}");
        user.subkeys = vec![(
            "sip".into(),
            vec![
                ("Registrar".into(), text("other:5060")),
                ("Account".into(), text("sip:me@pbx")),
            ],
        )];
        let layer = RegistryLayer::over(
            Some(RegistryLayer::from_key(&machine).expect("machine")),
            Some(RegistryLayer::from_key(&user).expect("user")),
        )
        .expect("both");
        assert_eq!(layer.table["port"].as_integer(), Some(19501));
        assert_eq!(layer.table["idle_timeout_secs"].as_integer(), Some(77));
        assert_eq!(layer.table["sip"]["registrar"].as_str(), Some("pbx:5060"));
        assert_eq!(layer.table["sip"]["account"].as_str(), Some("sip:me@pbx"));
        assert_eq!(layer.path, format!("HKLM\\{KEY} and HKCU\\{KEY}"));
        let only_user =
            RegistryLayer::over(None, RegistryLayer::from_key(&user).ok()).expect("user");
        assert_eq!(only_user.table["port"].as_integer(), Some(19502));
        assert!(RegistryLayer::over(None, None).is_none());
    }

    #[test]
    fn the_originals_values_are_read_as_the_original_reads_them() {
        for port in [text("19501"), RegistryValue::Number(19501), text(" 19501 ")] {
            let c = resolve(
                &ServeArgs::default(),
                None,
                &key(&[("Port", port), ("AllowedOrigins", text("company.com"))]),
            );
            assert_eq!(c.port, 19501);
            assert_eq!(c.access.origins.to_string(), "company.com");
        }
        let c = resolve(
            &ServeArgs::default(),
            None,
            &key(&[(
                "AllowedOrigins",
                text("crm.example.com; https://desk.example.com"),
            )]),
        );
        assert_eq!(
            c.access.origins.to_string(),
            "crm.example.com, https://desk.example.com:443"
        );
        let c = resolve(
            &ServeArgs::default(),
            None,
            &key(&[("AllowedOrigins", text("*"))]),
        );
        assert!(c.access.origins.allows_any());
    }

    #[test]
    fn every_other_setting_by_its_file_key() {
        let mut reg = key(&[
            ("IdleTimeoutSecs", RegistryValue::Number(77)),
            ("log_full_numbers", text("true")),
            (
                "DialDeny",
                RegistryValue::List(vec!["+1900*".into(), "112".into()]),
            ),
        ]);
        reg.subkeys
            .push(("Sim".into(), vec![("AnswerDelayMs".into(), text("1234"))]));
        reg.subkeys
            .push(("aliases".into(), vec![("crm".into(), text("sim"))]));
        let c = resolve(&ServeArgs::default(), None, &reg);
        assert_eq!(c.idle_timeout, std::time::Duration::from_secs(77));
        assert!(c.log_full_numbers);
        assert_eq!(c.backend_settings.sim.answer_delay.as_millis(), 1234);
        assert_eq!(
            c.backends.aliases.get("crm").map(String::as_str),
            Some("sim")
        );
    }

    #[test]
    fn precedence_is_flags_then_registry_then_file_then_defaults() {
        let reg = key(&[("Port", text("2")), ("IdleTimeoutSecs", text("20"))]);
        let file = "port = 3\nidle_timeout_secs = 30\nmax_batch = 33\n";
        let flags = ServeArgs {
            port: Some(1),
            ..ServeArgs::default()
        };
        let c = resolve(&flags, Some(file), &reg);
        assert_eq!(
            c.port, 1,
            "flag (or its BAPIWS_ variable) over the registry"
        );
        assert_eq!(c.idle_timeout.as_secs(), 20, "registry over the file");
        assert_eq!(c.max_batch, 33, "file over the default");
        assert_eq!(c.max_connections, 1024, "the default");
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_value() {
        for (name, value, says) in [
            ("Port", text("abc"), "\"abc\" is not a valid value"),
            (
                "Port",
                RegistryValue::Number(70000),
                "70000 is not a valid value",
            ),
            ("Port", RegistryValue::Unsupported(3), "registry type 3"),
            ("AllowedOrigins", text("http://"), "invalid allowed origin"),
        ] {
            let reg = key(&[(name, value)]);
            let e = match RegistryLayer::from_key(&reg) {
                Err(e) => e,
                Ok(layer) => {
                    Config::resolve_with(&ServeArgs::default(), None, None, Some(layer), false)
                        .expect_err("refused")
                }
            };
            let m = e.to_string();
            assert!(m.contains(r"HKLM\Software\Benemen\BAPIWS"), "{m}");
            assert!(m.contains(&format!("value {name}")), "{m}");
            assert!(m.contains(says), "{m}");
        }
    }

    #[test]
    fn an_unreadable_subkey_is_a_warning_not_an_error() {
        let mut reg = key(&[("Port", text("9000"))]);
        reg.skipped
            .push(("Private".into(), "Access is denied.".into()));
        let layer = RegistryLayer::from_key(&reg).expect("read");
        assert_eq!(layer.warnings.len(), 1);
        assert!(
            layer.warnings[0].contains("\"Private\" cannot be read"),
            "{:?}",
            layer.warnings
        );
    }

    #[test]
    fn an_error_without_a_value_names_only_the_key() {
        let e = ConfigError::Registry {
            path: format!("HKLM\\{KEY}"),
            value: String::new(),
            problem: "cannot be read: Access is denied.".into(),
        };
        assert_eq!(
            e.to_string(),
            r"registry HKLM\Software\Benemen\BAPIWS: cannot be read: Access is denied."
        );
    }

    #[test]
    fn unknown_values_are_warnings_not_errors() {
        let layer = RegistryLayer::from_key(&key(&[
            ("Port", text("9000")),
            ("VoiceForWindowsPath", text("C:\\x")),
        ]))
        .expect("read");
        assert_eq!(layer.warnings.len(), 1);
        assert!(layer.warnings[0].contains("VoiceForWindowsPath"));
    }
}

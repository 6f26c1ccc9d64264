//! The configuration's tests: files, flags, and the messages for bad values.

use super::*;
use crate::phone::BackendKind;
#[cfg(unix)]
use crate::phone::baresip::Mode;
use crate::phone::sim::SimSettings;
use std::time::Duration;

fn from_file(text: &str) -> Result<Config, ConfigError> {
    let path = PathBuf::from("/etc/test.toml");
    Config::resolve(&ServeArgs::default(), Some(text), Some(path))
}

#[test]
fn defaults() {
    let c = from_file("").expect("empty file is fine");
    assert_eq!(c.port, 9898);
    assert_eq!(c.listen.len(), 2);
    assert!(c.listen.iter().all(|ip| ip.is_loopback()));
    assert_eq!(c.access.origins.to_string(), "*");
    assert_eq!(c.idle_timeout, Duration::from_secs(180));
    assert_eq!(c.backends.default, "sim");
    assert_eq!(c.backend_settings.sim, SimSettings::default());
    assert_eq!(c.max_message_bytes, 65536);
}

// The example has a [baresip] table, which is refused where baresip does not run.
#[cfg(unix)]
#[test]
fn example_file_parses() {
    let text = include_str!("../../docs/bapiws.example.toml");
    let c = from_file(text).expect("the example file is valid");
    assert_eq!(
        c.backends.aliases.get("lync").map(String::as_str),
        Some("sim")
    );
}

#[test]
fn flags_beat_file() {
    let path = PathBuf::from("/x.toml");
    let args = ServeArgs {
        port: Some(2),
        ..ServeArgs::default()
    };
    let c = Config::resolve(&args, Some("port = 1\nidle_timeout_secs = 5\n"), Some(path))
        .expect("valid");
    assert_eq!(c.port, 2);
    assert_eq!(c.idle_timeout, Duration::from_secs(5));
}

#[test]
fn bad_files_name_file_key_and_problem() {
    let cases = [
        ("port = \"x\"", "key `port`", "invalid type"),
        ("port = 70000", "key `port`", ""),
        ("prot = 1", "key `prot`", "unknown key"),
        (
            "[sim]\nanswer_dely_ms = 1",
            "key `sim.answer_dely_ms`",
            "unknown key",
        ),
        (
            "[sim]\navailability = \"Sleepy\"",
            "key `sim.availability`",
            "not one of",
        ),
        (
            "idle_timeout_secs = 0",
            "key `idle_timeout_secs`",
            "out of range",
        ),
        (
            "listen = [\"localhost\"]",
            "key `listen`",
            "not an IP address",
        ),
        (
            "allowed_origins = [\"a.com:80\"]",
            "key `allowed_origins`",
            "invalid allowed origin",
        ),
        (
            "default_backend = \"skype\"",
            "key `default_backend`",
            "unknown backend",
        ),
        (
            "[aliases]\nlync = \"nothing\"",
            "key `aliases.lync`",
            "unknown backend",
        ),
        ("log_level = \"loud\"", "key `log_level`", "not one of"),
        ("port = ", "config file /etc/test.toml", "TOML parse error"),
    ];
    for (text, key, problem) in cases {
        let err = from_file(text).expect_err(text).to_string();
        assert!(err.contains("/etc/test.toml"), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
        assert!(err.contains(problem), "{text}: {err}");
    }
}

#[test]
fn remote_listening_needs_allow_remote() {
    let err = from_file("listen = [\"0.0.0.0\"]")
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("key `listen`") && err.contains("allow_remote"),
        "{err}"
    );
    let c = from_file(
        "listen = [\"0.0.0.0\"]\nallow_remote = true\nallowed_hosts = [\"phone.example.lan\"]",
    )
    .expect("allowed explicitly");
    assert!(c.allow_remote);
    assert_eq!(c.access.hosts.extra(), ["phone.example.lan"]);
    assert!(from_file("allowed_hosts = [\"a b\"]").is_err());
}

#[test]
fn alias_flags() {
    let args = ServeArgs {
        aliases: vec!["Lync=sim".into(), "skype = SIM".into()],
        default_backend: Some("lync".into()),
        ..ServeArgs::default()
    };
    let c = Config::resolve(&args, None, None).expect("valid");
    // Two configured, and `vfw` built in (`lync` is configured here).
    assert_eq!(c.backends.aliases.len(), 3);
    let bad = ServeArgs {
        aliases: vec!["lync".into()],
        ..ServeArgs::default()
    };
    let err = Config::resolve(&bad, None, None).expect_err("no =");
    assert!(
        err.to_string().contains("--alias or BAPIWS_ALIASES"),
        "{err}"
    );
}

#[cfg(not(unix))]
#[test]
fn baresip_settings_are_refused_where_baresip_does_not_run() {
    let e = from_file("[baresip]\nmode = \"attach\"\n").expect_err("refused");
    let m = e.to_string();
    assert!(m.contains("key `baresip`"), "{m}");
    assert!(m.contains("does not run on this operating system"), "{m}");
}

#[cfg(unix)]
#[test]
fn baresip_table() {
    let c = from_file(
        "[baresip]\nmode = \"attach\"\nctrl_address = \"127.0.0.1:4500\"\naccount = \"sip:1001@pbx.example.com\"\nregister = true\ndial_uri = \"sip:{number}@pbx.example.com;user=phone\"\n",
    )
    .expect("valid");
    let b = &c.backend_settings.baresip;
    assert_eq!(b.mode, Mode::Attach);
    assert_eq!(b.ctrl_address.port(), 4500);
    assert!(b.register);
    let bad = [
        ("[baresip]\nmode = \"remote\"", "baresip.mode"),
        ("[baresip]\naccount = \"1001\"", "baresip.account"),
        (
            "[baresip]\nauth_password = \"a;b\"",
            "baresip.auth_password",
        ),
        (
            "[baresip]\nauth_user = \"x\\nmodule evil.so\"",
            "baresip.auth_user",
        ),
        ("[baresip]\ndial_uri = \"sip:1@h\"", "baresip.dial_uri"),
        ("[baresip]\nrtp_ports = \"9-1\"", "baresip.rtp_ports"),
        ("[baresip]\ntransport = \"sctp\"", "baresip.transport"),
        ("[baresip]\nregister = \"yes\"", "baresip.register"),
        ("[baresip]\ncolour = \"x\"", "baresip.colour"),
        (
            "[baresip]\nctrl_address = \"0.0.0.0:4444\"",
            "baresip.ctrl_address",
        ),
        (
            "[baresip]\nctrl_address = \"127.0.0.1:5061\"",
            "baresip.ctrl_address",
        ),
        (
            "[baresip]\nsip_listen = \"127.0.0.1:7000\"\nctrl_address = \"127.0.0.1:7000\"",
            "baresip.ctrl_address",
        ),
    ];
    for (text, key) in bad {
        let err = from_file(text).expect_err(text).to_string();
        assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
    }
    let err = from_file("[baresip]\nauth_password = \"Secr3t;pw\"").expect_err("bad");
    assert!(!err.to_string().contains("Secr3t"), "{err}");
    // Attach mode may point anywhere the user runs baresip.
    assert!(from_file("[baresip]\nmode = \"attach\"\nctrl_address = \"127.0.0.1:5061\"").is_ok());
}

#[test]
fn misspelt_keys_are_named_with_a_suggestion() {
    let err = from_file("idle_timout_secs = 5")
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("did you mean `idle_timeout_secs`"), "{err}");
    let err = from_file("[sim]\nanswer_dely_ms = 1")
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("did you mean `answer_delay_ms`"), "{err}");
}

#[test]
fn flags_name_the_flag_and_variable() {
    let args = ServeArgs {
        idle_timeout_secs: Some(0),
        ..ServeArgs::default()
    };
    let err = Config::resolve(&args, Some("port = 1"), Some(PathBuf::from("/x.toml")))
        .expect_err("out of range")
        .to_string();
    assert!(
        err.contains("--idle-timeout-secs or BAPIWS_IDLE_TIMEOUT_SECS"),
        "{err}"
    );
}

#[test]
fn an_alias_may_not_hide_a_backend() {
    for text in [
        "[aliases]\nsim = \"sim\"",
        "[extra_backends]\nagent2 = \"sim\"\n[aliases]\nAgent2 = \"sim\"",
    ] {
        let err = from_file(text).expect_err(text).to_string();
        assert!(err.contains("already a backend"), "{err}");
    }
}

#[test]
fn extra_backends_and_aliases_to_them() {
    let c = from_file("[extra_backends]\nagent2 = \"sim\"\n[aliases]\nskype = \"agent2\"\n")
        .expect("valid");
    assert_eq!(c.backends.instances.get("agent2"), Some(&BackendKind::Sim));
    for (text, key) in [
        ("[extra_backends]\nsim = \"sim\"", "extra_backends.sim"),
        ("[extra_backends]\nx = \"phone\"", "extra_backends.x"),
        ("[extra_backends]\nx = \"baresip\"", "extra_backends.x"),
    ] {
        let err = from_file(text).expect_err(text).to_string();
        assert!(err.contains(key), "{err}");
    }
}

#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit and integration tests,
# including the end-to-end tests with real baresip processes.
# Usage: scripts/test.sh   (from anywhere; needs Rust's cargo on PATH)
#
# The baresip tests need Debian's baresip-core, and those in a real SIP network
# (tests/sip_network.rs) also kamailio (the registrar) and sip-tester (SIPp, the far
# ends), over TLS (tests/sip_tls.rs) kamailio-tls-modules; the browser tests need Debian's chromium, openssl and util-linux (unshare), and
# the Python recipe test Debian's python3-websockets; the click-to-call test xdg-utils
# (xdg-mime, xdg-open); the SIP password in the Secret Service (tests/sip_keyring.rs)
# dbus-daemon, dbus-bin (dbus-send) and gnome-keyring; encrypted media (tests/sip_srtp.rs)
# tcpdump;
# the JavaScript client's tests need Node 20 and npm; the package test
# (scripts/package-test.sh) needs root, dpkg, cargo-deb, systemd-analyze and
# desktop-file-validate; the Windows build and its tests under Wine
# (scripts/windows-test.sh) need Debian's rustc-web, cargo-web, rust-web-src, MinGW, Wine
# and wixl; the build itself needs Debian's libasound2-dev and pkg-config (cpal's ALSA).
# As root with apt-get, this script
# installs the Debian packages when they are missing; otherwise it says what to install.
# Those tests fail, never skip, when what they need is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

install_package() { # what package: as root installs it, else says what to install
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing $2 (for $1)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "warning: $1 is missing; install the $2 package (the tests that need it will fail)" >&2
  fi
}

need_package() { # command package
  command -v "$1" >/dev/null 2>&1 || install_package "$1" "$2"
}

need_package baresip baresip-core
need_package kamailio kamailio
# SIP over TLS (tests/sip_tls.rs): kamailio's TLS module.
[ -f /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || [ -f /usr/lib/kamailio/modules/tls.so ] \
  || install_package "kamailio's TLS module" kamailio-tls-modules
need_package sipp sip-tester
# Encrypted media (tests/sip_srtp.rs): captures of the RTP ports on loopback.
need_package tcpdump tcpdump
# The tests run their own kamailio on loopback ports of their own; the package's system
# service is not used: make sure it does not run (it would hold port 5060).
if [ "$(id -u)" = 0 ]; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now kamailio >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    service kamailio stop >/dev/null 2>&1 || true
  fi
fi
need_package chromium chromium
# cpal (the built-in phone's sound devices) builds against ALSA: its headers, found with
# pkg-config.
need_package pkg-config pkg-config
dpkg -s libasound2-dev >/dev/null 2>&1 || install_package "ALSA's headers (for cpal)" libasound2-dev
# The browser tests of public pages (clients/js/test/lna.e2e.test.mjs) make a certificate
# with openssl and start Chromium with a policy folder of their own with unshare.
need_package openssl openssl
need_package unshare util-linux
# The click-to-call test (tests/handler.rs) registers bapiws with xdg-mime and opens a
# tel: link with xdg-open.
need_package xdg-mime xdg-utils
need_package xdg-open xdg-utils
# The SIP password kept in the Secret Service (tests/sip_keyring.rs): a private session
# bus (dbus-daemon; dbus-send asks it who is on it) with GNOME Keyring's secrets on it.
need_package dbus-daemon dbus-daemon
need_package dbus-send dbus-bin
need_package gnome-keyring-daemon gnome-keyring

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo clippy --no-default-features (a build without sound devices: no ALSA headers)"
cargo clippy --locked -p bapiws --all-targets --no-default-features -- -D warnings

step "cargo test --workspace"
cargo test --locked --workspace --all-targets

step "benchmark harness, smoke mode (seconds; no targets asserted)"
cargo build --locked --workspace --bins
target/debug/bapiws-bench smoke --bapiws target/debug/bapiws

step "Debian package: built, installed, run, validated and removed (scripts/package-test.sh)"
# As root only (dpkg -i); it installs cargo-deb once (about 1.5 minutes on two cores),
# and systemd (systemd-analyze) and desktop-file-utils when missing.
bash scripts/package-test.sh

step "Windows: cross-built, tested under Wine, the MSI installed and removed (scripts/windows-test.sh)"
# Installs Debian's rustc-web, cargo-web, rust-web-src, MinGW, Wine and wixl when missing
# (about 2 GB, once); the first build of the standard library for Windows takes minutes.
bash scripts/windows-test.sh

step "JavaScript client: build (the committed dist/ must match src/), types, unit, recipe and browser tests"
# The Python recipe of docs/integrating.md needs Debian's python3-websockets, which is
# installed for the system's Python (/usr/bin/python3; PYTHON overrides it in the test).
need_python_module() { # module package
  /usr/bin/python3 -c "import $1" >/dev/null 2>&1 || install_package "Python's $1 module" "$2"
}
need_python_module websockets python3-websockets
cd clients/js
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
if ! git diff --quiet -- dist; then
  echo "clients/js/dist is out of date: run 'npm run build' in clients/js and commit it" >&2
  git --no-pager diff --stat -- dist >&2
  exit 1
fi
npm run --silent test:types
export BAPIWS_BIN="$PWD/../../target/debug/bapiws"
npm test
npm run test:e2e

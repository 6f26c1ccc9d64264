#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit and integration tests,
# including the end-to-end tests with real baresip processes.
# Usage: scripts/test.sh   (from anywhere; needs Rust's cargo on PATH)
#
# The baresip tests need Debian's baresip-core. As root with apt-get, this script
# installs it when it is missing; otherwise it says what to install. Those tests fail,
# never skip, when baresip is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_package() { # command package
  if command -v "$1" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing $2 (for $1)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "warning: $1 is missing; install the $2 package (the tests that need it will fail)" >&2
  fi
}

need_package baresip baresip-core

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked --all-targets

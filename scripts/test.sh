#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit and integration tests.
# Usage: scripts/test.sh   (from anywhere; needs Rust's cargo on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked --all-targets

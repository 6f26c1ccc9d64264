#!/usr/bin/env bash
# Runs the server from this checkout on a fresh machine: scripts/serve.sh [serve flags…]
# (the simulated phone unless the flags or the configuration choose another).
#
# On Linux the built-in phone's sound devices build against ALSA's headers: as root with
# apt-get this installs them (Debian's libasound2-dev and pkg-config) when they are
# missing; otherwise it builds without sound devices (the built-in phone then has its
# tone, WAV and silence sources only) and says how to add them.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [ "$(uname -s)" = Linux ] && ! pkg-config --exists alsa 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ALSA's headers (libasound2-dev, pkg-config) for the sound devices" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libasound2-dev pkg-config >/dev/null
  fi
  if ! pkg-config --exists alsa 2>/dev/null; then
    echo "note: ALSA's headers are missing (apt install libasound2-dev pkg-config):" \
      "building without sound devices" >&2
    features=(--no-default-features)
  fi
fi
exec cargo run --release --locked "${features[@]}" -- serve "$@"

#!/usr/bin/env bash
# The Windows build and its tests, on Linux: cross-built for x86_64-pc-windows-gnu with
# Debian's Rust (which can build the standard library for that target from source) and
# MinGW, and run under Wine. Run by scripts/test.sh; also on its own:
#
#   scripts/windows-test.sh
#
# Steps: install what is missing (as root, with apt-get; otherwise it says what to
# install and fails), prepare a Wine prefix in target/windows/wine-prefix, build
# bapiws.exe (profile wine-test: the release profile without its LTO), run the unit and
# integration tests under Wine (all but those of baresip, which runs on Linux only), the
# Linux tests of the built-in SIP phone with the
# server under Wine (against kamailio and SIPp on Linux), the Linux-side smoke test of the .exe
# (tests/windows/smoke_test.py: WebSocket client, /health, registry settings and their
# precedence, Ctrl-C, autostart), then build the MSI and install, run and uninstall it
# under Wine (tests/windows/msi-test.sh). Any failure fails the script; nothing is skipped.
# Facts behind the recipe: docs/windows.md, "How the Windows build is tested".
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [windows] %s\n' "$*"; }
fail() { echo "windows-test: $*" >&2; exit 1; }

# Debian's rustc-web/cargo-web (Rust 1.96 with the library sources, rust-web-src) build
# the standard library for the target (-Zbuild-std); rustup's toolchain cannot download
# a Windows target here. wine64 runs the programs; wixl builds the MSI (msitools' msibuild
# and msiinfo edit and read it); the smoke test's
# WebSocket client is Python's websockets, for the system's Python.
packages=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64-win32 wine64 wine wixl msitools python3-websockets)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing ${missing[*]} (about 2 GB, once)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    fail "missing Debian packages: ${missing[*]} (install them as root: apt-get install --no-install-recommends ${missing[*]})"
  fi
fi

TARGET=x86_64-pc-windows-gnu
TARGET_DIR="$PWD/target/windows"
# Debian's cargo and rustc, not rustup's (first on PATH): both named, or Debian's cargo
# would pick rustup's rustc and ask for rust-src. RUSTC_BOOTSTRAP allows -Zbuild-std on
# that stable compiler.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
export WINEPREFIX="$TARGET_DIR/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# cargo_win SUBCOMMAND ARGS…: the target's options go right after the subcommand (before
# any `--` that passes the rest on).
cargo_win() {
  local sub=$1
  shift
  # Bounded: a hang under Wine fails the run instead of stalling it.
  timeout --kill-after=30 1800 \
    /usr/bin/cargo "$sub" --locked --target "$TARGET" -Zbuild-std --target-dir "$TARGET_DIR" "$@"
}

# The Wine server of this prefix is stopped when the script ends, however it ends.
trap 'wineserver -k >/dev/null 2>&1 || true' EXIT

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  step "creating the Wine prefix $WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  timeout 300 wineboot --init >/dev/null 2>&1 || fail "wineboot --init failed"
  timeout 120 wineserver -w || fail "the Wine server did not settle after wineboot"
fi
# Wine's null graphics driver: no display is used even where $DISPLAY is set (the
# server's hidden window, the one that hears logoff and shutdown, needs none).
wine reg add 'HKCU\Software\Wine\Drivers' /v Graphics /t REG_SZ /d null /f >/dev/null 2>&1 \
  || fail "cannot set Wine's graphics driver"
# Wine 8.0 lacks bcryptprimitives.dll (ProcessPrng), which every Rust .exe imports.
shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$shim" ] || [ scripts/windows/processprng.c -nt "$shim" ]; then
  step "building the ProcessPrng shim for Wine (scripts/windows/processprng.c)"
  x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" scripts/windows/processprng.c \
    scripts/windows/processprng.def -ladvapi32
fi

# One Wine server and its session's services (services.exe, winedevice.exe, plugplay,
# explorer) for the rest of the script, started here with their output going nowhere
# (the EXIT trap stops them). Started instead by a test's first wine process, they would
# inherit that process's stdout and stderr, pipes the test reads to their end
# (`Server::stderr_after_kill`), and hold them open: the test would wait forever.
# (The server `wine reg add` above started ends first: a second one would not start.)
timeout 120 wineserver -w || fail "the Wine server of the settings above did not end"
wineserver -p </dev/null >/dev/null 2>&1 || fail "cannot start the Wine server"
timeout 120 wine cmd /c exit </dev/null >/dev/null 2>&1 || fail "cannot start the Wine session's services"

# The wine-test profile is the release profile without its whole-program optimization
# (Cargo.toml says why): the tests below share its build of every dependency.
step "building bapiws.exe and the windowless bapiwsw.exe (profile wine-test: release without LTO)"
cargo_win build --profile wine-test -p bapiws --bins
EXE="$TARGET_DIR/$TARGET/wine-test/bapiws.exe"
[ -f "$EXE" ] || fail "no $EXE after the build"
ls -l "$EXE"

step "clippy for Windows, -D warnings (the Windows-only code is linted here)"
# Debian's cargo-clippy and clippy-driver, found first on PATH for this command only.
PATH="/usr/bin:$PATH" cargo_win clippy -p bapiws --all-targets -- -D warnings

step "unit and integration tests under Wine (baresip's run on Linux only)"
# tests/baresip.rs, tests/baresip_call_control.rs and tests/sip_network.rs are
# compiled out on Windows (#![cfg(unix)]): the baresip backend is not offered there.
cargo_win test --profile wine-test -p bapiws --lib --tests --no-fail-fast

step "the built-in SIP phone of bapiws.exe against kamailio and SIPp (Linux's tests of the phone, the server under Wine)"
# The Linux tests of the built-in phone, built natively (rustup's cargo and rustc, the
# Linux step's target/), with the server they start being this bapiws.exe under Wine
# (tests/common: BAPIWS_TEST_WINE_EXE). kamailio and SIPp run natively on loopback. The
# set: every built-in-phone test of tests/sip_network.rs (the scenario table's `sip::`
# half and the `sip_` tests of its own faults), the tone and DTMF tests of
# tests/sip_audio.rs, and all of tests/sip_queue.rs, sip_hostile.rs, sip_recovery.rs, sip_tls.rs
# and sip_srtp.rs (its far ends, baresip and SIPp, and tcpdump native too).
# Left out: sip_audio's sound-device test (it compares with the Linux machine's devices)
# and everything of baresip (not offered on Windows).
wine reg delete 'HKLM\Software\Benemen\BAPIWS' /f >/dev/null 2>&1 || true
native_cargo() { # the Linux build: none of the Windows build's compiler settings
  env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER \
    BAPIWS_TEST_WINE_EXE="$EXE" timeout --kill-after=30 1800 cargo "$@"
}
mapfile -t sip_tests < <(native_cargo test -q --locked --test sip_network -- --list 2>/dev/null \
  | sed -n 's/^\(sip::[a-z0-9_]*\|sip_[a-z0-9_]*\): test$/\1/p')
[ "${#sip_tests[@]}" -ge 15 ] || fail "found only ${#sip_tests[@]} tests of the built-in phone in tests/sip_network.rs"
echo "${#sip_tests[@]} tests of tests/sip_network.rs under Wine"
native_cargo test --locked --no-fail-fast --test sip_network --test sip_audio -- --exact \
  --test-threads 2 "${sip_tests[@]}" \
  a_1khz_tone_comes_back_through_an_rtp_echo_pcmu a_1khz_tone_comes_back_through_an_rtp_echo_pcma \
  dtmf_arrives_as_telephone_events_at_a_second_bapiws
native_cargo test --locked --no-fail-fast --test sip_queue --test sip_hostile --test sip_recovery --test sip_tls \
  --test sip_srtp -- --test-threads 2

step "the .exe driven from Linux (tests/windows/smoke_test.py)"
BAPIWS_EXE="$EXE" /usr/bin/python3 tests/windows/smoke_test.py

step "the MSI: built with wixl, installed, run and removed under Wine"
bash scripts/windows-msi.sh "$EXE" "$TARGET_DIR/bapiws.msi"
BAPIWS_EXE="$EXE" bash tests/windows/msi-test.sh "$TARGET_DIR/bapiws.msi"

step "Windows build and tests: every step passed"

#!/usr/bin/env bash
# Install, run and uninstall the bapiws MSI under Wine, and check what it
# leaves behind.
#
#   WINEPREFIX=/path/to/prefix tests/windows/msi-test.sh bapiws.msi
#
# Needs: a 64-bit Wine prefix in which Rust programs run (on Wine 8 that
# means system32\bcryptprimitives.dll, see scripts/windows-test.sh) where
# bapiws is not installed and HKLM\Software\Benemen\BAPIWS holds no Port or
# AllowedOrigins; wine, python3. Optional: BAPIWS_EXE, the exe the MSI was
# built from (the installed copy must then be identical); WINE (default
# wine). Anything missing is a failure, never a skip.
#
# Steps: (a) install and check files and registry; (b) run the installed
# server, check its banner and /health, stop it with Ctrl-C; (c) uninstall
# and check nothing is left; (d) with Port and AllowedOrigins set by an
# administrator before installing, check install and uninstall leave them
# alone; (e) the same with only Port set, as REG_DWORD.
set -euo pipefail

step() { echo "==> $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 MSI" >&2; exit 2; }
msi=$1
[ -f "$msi" ] || fail "$msi: no such file"
msi=$(realpath -- "$msi")

[ -n "${WINEPREFIX:-}" ] || fail "WINEPREFIX is not set (this test never uses your default prefix)"
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || fail "WINEPREFIX=$WINEPREFIX is not an initialised Wine prefix"
export WINEPREFIX
export WINEDEBUG=${WINEDEBUG:--all}
WINE=${WINE:-wine}
command -v "$WINE" >/dev/null || fail "$WINE not found (install Debian's wine package)"
command -v python3 >/dev/null || fail "python3 not found"
if [ -n "${BAPIWS_EXE:-}" ]; then
    [ -f "$BAPIWS_EXE" ] || fail "BAPIWS_EXE=$BAPIWS_EXE: no such file"
fi

SETTINGS='HKLM\Software\Benemen\BAPIWS'
RUN='HKLM\Software\Microsoft\Windows\CurrentVersion\Run'
WIN_DIR='C:\Program Files\bapiws'
WIN_EXE="$WIN_DIR\\bapiws.exe"
UNIX_DIR="$WINEPREFIX/drive_c/Program Files/bapiws"
RUN_DATA="\"$WIN_EXE\" serve"

work=$(mktemp -d "${TMPDIR:-/tmp}/bapiws-msi-test.XXXXXX")
server_pid=

cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -INT "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 20); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ] && [ -f "$work/server.log" ]; then
        echo "--- server output:" >&2
        cat "$work/server.log" >&2
    fi
    rm -rf -- "$work"
    exit $rc
}
trap cleanup EXIT

# reg_get KEY NAME: prints "TYPE DATA" if the value exists, nothing if not.
reg_get() {
    local out
    out=$("$WINE" reg query "$1" /v "$2" 2>/dev/null) || return 0
    printf '%s\n' "$out" | tr -d '\r' | awk -v name="$2" '
        {
            line = $0; sub(/^ +/, "", line)
            n = index(line, "    "); if (n == 0) next
            if (substr(line, 1, n - 1) != name) next
            rest = substr(line, n + 4)
            m = index(rest, "    ")
            if (m == 0) { print rest } else { print substr(rest, 1, m - 1) " " substr(rest, m + 4) }
            exit
        }'
}

# expect_reg KEY NAME "TYPE DATA" (or "" for absent) WHAT
expect_reg() {
    local got
    got=$(reg_get "$1" "$2")
    if [ "$got" != "$3" ]; then
        fail "$4: $1\\$2 is ${got:-absent}, expected ${3:-absent}"
    fi
}

msiexec() {
    local verb=$1 rc=0
    "$WINE" msiexec "$verb" "$msi" /qn </dev/null >"$work/msiexec.log" 2>&1 || rc=$?
    if [ $rc -ne 0 ]; then
        cat "$work/msiexec.log" >&2
        fail "wine msiexec $verb $(basename "$msi") /qn exited with $rc"
    fi
}

check_installed() {
    [ -f "$UNIX_DIR/bapiws.exe" ] || fail "$1: $UNIX_DIR/bapiws.exe is missing after install"
    for f in README.md LICENSE.txt; do
        [ -f "$UNIX_DIR/$f" ] || fail "$1: $UNIX_DIR/$f is missing after install"
    done
    if [ -n "${BAPIWS_EXE:-}" ]; then
        cmp -s "$BAPIWS_EXE" "$UNIX_DIR/bapiws.exe" \
            || fail "$1: installed bapiws.exe differs from BAPIWS_EXE=$BAPIWS_EXE"
    fi
    expect_reg "$RUN" bapiws "REG_SZ $RUN_DATA" "$1 (autostart entry)"
}

check_removed() {
    [ ! -e "$UNIX_DIR" ] || fail "$1: $UNIX_DIR still exists after uninstall: $(ls -A "$UNIX_DIR" | tr '\n' ' ')"
    expect_reg "$RUN" bapiws "" "$1 (autostart entry)"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

step "preconditions: $WINEPREFIX is clean"
[ ! -e "$UNIX_DIR" ] || fail "$UNIX_DIR already exists; use a fresh prefix"
expect_reg "$SETTINGS" Port "" "before the test"
expect_reg "$SETTINGS" AllowedOrigins "" "before the test"
expect_reg "$RUN" bapiws "" "before the test"

# (a) ------------------------------------------------------------------
step "install $(basename "$msi")"
msiexec /i
check_installed "install"
expect_reg "$SETTINGS" Port "REG_SZ 9898" "install (default Port)"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ *" "install (default AllowedOrigins)"
echo "    $WIN_EXE, Port=9898, AllowedOrigins=*, Run=$RUN_DATA"

# (b) ------------------------------------------------------------------
port=$(free_port)
step "run the installed server on port $port"
"$WINE" "$WIN_EXE" serve --port "$port" </dev/null >"$work/server.log" 2>&1 &
server_pid=$!
banner=
for _ in $(seq 1 120); do   # 30 s
    banner=$(tr -d '\r' <"$work/server.log" | grep -m1 "^bapiws .* listening on ws://127\.0\.0\.1:$port" || true)
    [ -n "$banner" ] && break
    kill -0 "$server_pid" 2>/dev/null \
        || fail "the installed server exited before printing its banner (on Wine 8 the prefix needs the bcryptprimitives.dll shim; see scripts/windows-test.sh)"
    sleep 0.25
done
[ -n "$banner" ] || fail "no 'bapiws ... listening on ws://127.0.0.1:$port' banner within 30 s"
echo "    $banner"
# It read the settings the MSI wrote (--port, a flag, comes before the registry).
case "$banner" in
    *"; registry HKLM\Software\Benemen\BAPIWS"*) ;;
    *) fail "the installed server did not read HKLM\Software\Benemen\BAPIWS: $banner" ;;
esac

step "GET http://127.0.0.1:$port/health"
health=$(python3 - "$port" <<'PY'
import json, sys, urllib.request
url = "http://127.0.0.1:%s/health" % sys.argv[1]
with urllib.request.urlopen(url, timeout=10) as r:
    body = r.read().decode()
    if r.status != 200:
        sys.exit("status %d" % r.status)
json.loads(body)
print(body.strip())
PY
) || fail "GET /health on the installed server failed"
echo "    $health"

step "stop the server with Ctrl-C"
kill -INT "$server_pid"
for _ in $(seq 1 80); do   # 20 s
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.25
done
kill -0 "$server_pid" 2>/dev/null && fail "the server did not exit within 20 s of Ctrl-C"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ $rc -eq 0 ] || fail "the server exited with $rc after Ctrl-C, expected 0"
rm -f -- "$work/server.log"

# (c) ------------------------------------------------------------------
step "uninstall"
msiexec /x
check_removed "uninstall"
expect_reg "$SETTINGS" Port "" "uninstall (default Port written by the MSI)"
expect_reg "$SETTINGS" AllowedOrigins "" "uninstall (default AllowedOrigins written by the MSI)"

# (d) ------------------------------------------------------------------
step "administrator's Port and AllowedOrigins survive install and uninstall"
"$WINE" reg add "$SETTINGS" /v Port /t REG_SZ /d 19555 /f >/dev/null
"$WINE" reg add "$SETTINGS" /v AllowedOrigins /t REG_SZ /d https://crm.example.com /f >/dev/null
expect_reg "$SETTINGS" Port "REG_SZ 19555" "reg add"
msiexec /i
check_installed "install over administrator's settings"
expect_reg "$SETTINGS" Port "REG_SZ 19555" "install over administrator's settings"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ https://crm.example.com" "install over administrator's settings"
msiexec /x
check_removed "uninstall with administrator's settings"
expect_reg "$SETTINGS" Port "REG_SZ 19555" "uninstall with administrator's settings"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ https://crm.example.com" "uninstall with administrator's settings"
"$WINE" reg delete "$SETTINGS" /v Port /f >/dev/null
"$WINE" reg delete "$SETTINGS" /v AllowedOrigins /f >/dev/null

# (e) ------------------------------------------------------------------
step "administrator's REG_DWORD Port kept; missing AllowedOrigins defaulted, then removed"
"$WINE" reg add "$SETTINGS" /v Port /t REG_DWORD /d 19556 /f >/dev/null
expect_reg "$SETTINGS" Port "REG_DWORD 0x4c64" "reg add"
msiexec /i
check_installed "install with only Port set"
expect_reg "$SETTINGS" Port "REG_DWORD 0x4c64" "install with only Port set"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ *" "install with only Port set"
msiexec /x
check_removed "uninstall with only Port set"
expect_reg "$SETTINGS" Port "REG_DWORD 0x4c64" "uninstall with only Port set"
expect_reg "$SETTINGS" AllowedOrigins "" "uninstall with only Port set"
"$WINE" reg delete "$SETTINGS" /v Port /f >/dev/null

step "MSI test passed"

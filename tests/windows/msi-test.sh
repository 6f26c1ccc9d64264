#!/usr/bin/env bash
# Install, run and uninstall the bapiws MSI under Wine, and check what it
# leaves behind.
#
#   WINEPREFIX=/path/to/prefix tests/windows/msi-test.sh bapiws.msi
#
# Needs: a 64-bit Wine prefix in which Rust programs run (on Wine 8 that
# means system32\bcryptprimitives.dll, see scripts/windows-test.sh) where
# bapiws is not installed and HKLM\Software\Benemen\BAPIWS holds no Port,
# AllowedOrigins (in either registry view), DefaultBackend or sip subkey;
# wine, python3, wixl and msitools (msiinfo) to build the newer package of
# step (g), and kamailio, setsid and winepath (step (h)). Optional:
# BAPIWS_EXE, the exe the MSI was built from (the installed copy must then
# be identical); WINE (default wine). Anything missing is a failure, never
# a skip.
#
# Steps: (a) install and check files and registry (the click-to-call keys
# too); (b) run the installed server, check its banner and /health, open
# tel:+358401234567 with `wine start` and check the server called it, stop
# it with Ctrl-C; (c) uninstall and check nothing is left; (d) with Port and
# AllowedOrigins set by an administrator, and another program's callto:
# handler, before installing, check install and uninstall leave them alone; (e) the same with only Port set, as REG_DWORD; (f) with both set
# only in the 32-bit view (WOW6432Node), check no 64-bit default is written
# and the 32-bit values stay; (g) major upgrade: build the same exe as the
# next patch version with scripts/windows-msi.sh, install it over this
# MSI, check one installation with its defaults, check this (older) MSI
# cannot be installed over it, uninstall it and check nothing is left;
# (h) the built-in SIP phone for a fleet: installs with a bad SIP_ACCOUNT or
# SIP_TRANSPORT, or SIP_REGISTRAR without SIP_ACCOUNT, are refused; with an
# administrator's sip\keepalive_secs set, install with SIP_ACCOUNT (holding
# %USERNAME%), SIP_REGISTRAR (a kamailio started here on loopback),
# SIP_TRANSPORT and SIP_AUTH_USER, check the values and their types, run the
# installed server (the password in BAPIWS_SIP_PASSWORD) and check /health
# says the phone registered, and kamailio that it registered as the Wine
# user; again with the password in a file named by an administrator's
# sip\password_file = %APPDATA%\... (REG_EXPAND_SZ), and once more with the password
# in the Credential Manager (sip set-password, password_store = keyring; the password in
# clear in no file of the prefix; forget-password, then serve refuses); a repair without the
# properties writes the values again (a deleted one included), an upgrade
# given only SIP_TRANSPORT changes that one and keeps the others; uninstall
# removes them and DefaultBackend, and keeps keepalive_secs.
#
# On failure or interruption (INT, TERM, HUP) the cleanup uninstalls what
# the test may have installed and deletes the registry values the test
# added, so the prefix can be reused; only a SIGKILL leaves it dirty.
set -euo pipefail

step() { echo "==> $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 MSI" >&2; exit 2; }
msi=$1
[ -f "$msi" ] || fail "$msi: no such file"
msi=$(realpath -- "$msi")
repo=$(cd -- "$(dirname -- "$0")/../.." && pwd)

[ -n "${WINEPREFIX:-}" ] || fail "WINEPREFIX is not set (this test never uses your default prefix)"
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || fail "WINEPREFIX=$WINEPREFIX is not an initialised Wine prefix"
export WINEPREFIX
export WINEDEBUG=${WINEDEBUG:--all}
WINE=${WINE:-wine}
command -v "$WINE" >/dev/null || fail "$WINE not found (install Debian's wine package)"
command -v python3 >/dev/null || fail "python3 not found"
command -v timeout >/dev/null || fail "timeout not found (coreutils)"
command -v msiinfo >/dev/null || fail "msiinfo not found (install Debian's msitools package)"
command -v wixl >/dev/null || fail "wixl not found (install Debian's wixl package)"
command -v kamailio >/dev/null || fail "kamailio not found (install Debian's kamailio package)"
command -v setsid >/dev/null || fail "setsid not found (util-linux)"
command -v winepath >/dev/null || fail "winepath not found (install Debian's wine package)"
if [ -n "${BAPIWS_EXE:-}" ]; then
    [ -f "$BAPIWS_EXE" ] || fail "BAPIWS_EXE=$BAPIWS_EXE: no such file"
fi

SETTINGS='HKLM\Software\Benemen\BAPIWS'
SIP_SETTINGS="$SETTINGS\\sip"
# Where the MSI keeps a copy of the SIP properties it wrote.
SAVED='HKLM\Software\bapiws\MsiProperties'
RUN='HKLM\Software\Microsoft\Windows\CurrentVersion\Run'
WIN_DIR='C:\Program Files\bapiws'
WIN_EXE="$WIN_DIR\\bapiws.exe"
UNIX_DIR="$WINEPREFIX/drive_c/Program Files/bapiws"
RUN_DATA="\"$WIN_DIR\\bapiwsw.exe\" serve"
CLASSES='HKLM\Software\Classes'
CAPABILITIES='HKLM\Software\bapiws\Capabilities'
REGISTERED='HKLM\Software\RegisteredApplications'
LINK_DATA="\"$WIN_EXE\" dial -- \"%1\""
LINK_KEYS=(tel callto sip sips bapiws.url)
OTHER_CALLTO='"C:\other\phone.exe" "%1"'

work=$(mktemp -d "${TMPDIR:-/tmp}/bapiws-msi-test.XXXXXX")
server_pid=
# kamailio of step (h): its process group (it runs in its own session).
kamailio_pid=
# What the cleanup undoes: packages this test may have left installed (each
# added before its install starts, dropped after its uninstall succeeded),
# and settings values this test added, as "VIEW|KEY|NAME" (dropped once the
# test deleted them itself).
may_be_installed=()
test_values=()
# Keys this test added (another program's handler), deleted by the cleanup.
test_keys=()
# Set once step (h) installs with the SIP properties: the cleanup then also
# deletes what the MSI writes for them, should an uninstall have left any.
sip_installed=
# The password file of step (h), and its folder if the test made it.
password_file=
password_dir_made=

# Bounds for every Wine command this test waits for.
MSIEXEC_TIMEOUT=120
REG_TIMEOUT=30

cleanup() {
    local rc=$?
    trap - INT TERM HUP
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
    if [ -n "$kamailio_pid" ]; then
        if [ $rc -ne 0 ] && [ -f "$work/kamailio/log" ]; then
            echo "--- kamailio's log:" >&2
            cat "$work/kamailio/log" >&2
        fi
        stop_kamailio
    fi
    local i pkg value
    # Newest first: a newer package installed over an older one is the one
    # registered.
    for ((i = ${#may_be_installed[@]} - 1; i >= 0; i--)); do
        pkg=${may_be_installed[i]}
        echo "cleanup: wine msiexec /x $pkg /qn (errors ignored)" >&2
        timeout -k 5 "$MSIEXEC_TIMEOUT" "$WINE" msiexec /x "$pkg" /qn </dev/null >/dev/null 2>&1 || true
    done
    local view key name
    for value in ${test_values[@]+"${test_values[@]}"}; do
        IFS='|' read -r view key name <<<"$value"
        echo "cleanup: wine reg delete $key /v $name /f $view (errors ignored)" >&2
        timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$key" /v "$name" /f "$view" </dev/null >/dev/null 2>&1 || true
    done
    if [ -n "$sip_installed" ]; then
        for name in account registrar transport auth_user; do
            timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$SIP_SETTINGS" /v "$name" /f /reg:64 </dev/null >/dev/null 2>&1 || true
        done
        timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$SETTINGS" /v DefaultBackend /f /reg:64 </dev/null >/dev/null 2>&1 || true
        timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$SAVED" /f </dev/null >/dev/null 2>&1 || true
        # Its parent too, when nothing else is left in it.
        if ! timeout -k 5 "$REG_TIMEOUT" "$WINE" reg query 'HKLM\Software\bapiws' /s </dev/null 2>/dev/null | grep -q REG_; then
            timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete 'HKLM\Software\bapiws' /f </dev/null >/dev/null 2>&1 || true
        fi
        echo "cleanup: wine reg delete the SIP values, DefaultBackend and $SAVED (errors ignored)" >&2
    fi
    if [ -n "$password_file" ]; then
        rm -f -- "$password_file"
        [ -z "$password_dir_made" ] || rmdir -- "$(dirname -- "$password_file")" 2>/dev/null || true
    fi
    for value in ${test_keys[@]+"${test_keys[@]}"}; do
        echo "cleanup: wine reg delete $value /f (errors ignored)" >&2
        timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$value" /f </dev/null >/dev/null 2>&1 || true
    done
    rm -rf -- "$work"
    exit $rc
}
# stop_kamailio: SIGTERM to kamailio's process group, SIGKILL if it lingers
# (its workers with it); bounded.
stop_kamailio() {
    [ -n "$kamailio_pid" ] || return 0
    kill -TERM -- "-$kamailio_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do   # 5 s
        kill -0 "$kamailio_pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -KILL -- "-$kamailio_pid" 2>/dev/null || true
    wait "$kamailio_pid" 2>/dev/null || true
    kamailio_pid=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# wine_reg ARGS...: wine reg, bounded.
wine_reg() {
    timeout -k 5 "$REG_TIMEOUT" "$WINE" reg "$@" </dev/null
}

# reg_get KEY NAME [VIEW]: prints "TYPE DATA" if the value exists, nothing
# if not. VIEW is /reg:64 (the default) or /reg:32.
reg_get() {
    local out rc=0
    out=$(wine_reg query "$1" /v "$2" "${3:-/reg:64}" 2>/dev/null) || rc=$?
    case $rc in
        0) ;;
        124|137) fail "wine reg query $1 /v $2 did not finish within $REG_TIMEOUT s" ;;
        *) return 0 ;;
    esac
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

# expect_reg KEY NAME "TYPE DATA" (or "" for absent) WHAT [VIEW]
expect_reg() {
    local got
    got=$(reg_get "$1" "$2" "${5:-/reg:64}")
    if [ "$got" != "$3" ]; then
        fail "$4: $1\\$2 (${5:-/reg:64}) is ${got:-absent}, expected ${3:-absent}"
    fi
}

# reg_default KEY: prints "TYPE DATA" of the key's default value if the key
# exists (TYPE alone when the value is not set), nothing if not.
reg_default() {
    local out rc=0
    out=$(wine_reg query "$1" /ve 2>/dev/null) || rc=$?
    case $rc in
        0) ;;
        124|137) fail "wine reg query $1 /ve did not finish within $REG_TIMEOUT s" ;;
        *) return 0 ;;
    esac
    printf '%s\n' "$out" | tr -d '\r' | awk '
        / REG_[A-Z_]+/ {
            line = $0; sub(/^ +/, "", line)
            n = index(line, "REG_"); rest = substr(line, n)
            m = index(rest, "    ")
            if (m == 0) { print rest } else { print substr(rest, 1, m - 1) " " substr(rest, m + 4) }
            exit
        }'
}

# key_exists KEY
key_exists() {
    wine_reg query "$1" /reg:64 >/dev/null 2>&1
}

check_link_keys() {
    local k
    for k in "${LINK_KEYS[@]}"; do
        if [ "$k" = callto ] && [ "${2:-}" = other-callto ]; then
            continue
        fi
        [ "$(reg_default "$CLASSES\\$k\\shell\\open\\command")" = "REG_SZ $LINK_DATA" ] \
            || fail "$1: $CLASSES\\$k\\shell\\open\\command is '$(reg_default "$CLASSES\\$k\\shell\\open\\command")', expected REG_SZ $LINK_DATA"
    done
    for k in tel callto sip sips; do
        expect_reg "$CAPABILITIES\\URLAssociations" "$k" "REG_SZ bapiws.url" "$1 (Default apps: $k)"
        if [ "$k" = callto ] && [ "${2:-}" = other-callto ]; then
            continue
        fi
        wine_reg query "$CLASSES\\$k" /v "URL Protocol" >/dev/null 2>&1 \
            || fail "$1: $CLASSES\\$k has no URL Protocol value"
    done
    expect_reg "$CAPABILITIES" ApplicationName "REG_SZ bapiws" "$1 (Default apps: name)"
    expect_reg "$REGISTERED" bapiws 'REG_SZ Software\bapiws\Capabilities' "$1 (RegisteredApplications)"
}

check_link_keys_removed() {
    local k
    for k in "${LINK_KEYS[@]}"; do
        if [ "$k" = callto ] && [ "${2:-}" = other-callto ]; then
            continue
        fi
        ! key_exists "$CLASSES\\$k" || fail "$1: $CLASSES\\$k is still there"
    done
    ! key_exists 'HKLM\Software\bapiws' || fail "$1: HKLM\Software\bapiws is still there"
    expect_reg "$REGISTERED" bapiws "" "$1 (RegisteredApplications)"
}

# set_value VIEW NAME TYPE DATA [KEY] / delete_value VIEW NAME [KEY]: an
# administrator's setting (in KEY, by default the settings key), added and
# deleted by this test (and by the cleanup if need be).
set_value() {
    local key=${5:-$SETTINGS}
    test_values+=("$1|$key|$2")
    wine_reg add "$key" /v "$2" /t "$3" /d "$4" /f "$1" >/dev/null \
        || fail "wine reg add $key /v $2 $1 failed"
}
delete_value() {
    local key=${3:-$SETTINGS}
    wine_reg delete "$key" /v "$2" /f "$1" >/dev/null \
        || fail "wine reg delete $key /v $2 $1 failed"
    local kept=() v
    for v in ${test_values[@]+"${test_values[@]}"}; do
        [ "$v" = "$1|$key|$2" ] || kept+=("$v")
    done
    test_values=(${kept[@]+"${kept[@]}"})
}

# run_msiexec VERB PACKAGE [PROPERTY=VALUE...]: wine msiexec VERB PACKAGE
# /qn PROPERTY=VALUE..., bounded; sets rc and leaves the output in
# $work/msiexec.log.
run_msiexec() {
    local verb=$1 pkg=$2
    shift 2
    rc=0
    timeout -k 5 "$MSIEXEC_TIMEOUT" "$WINE" msiexec "$verb" "$pkg" /qn "$@" </dev/null >"$work/msiexec.log" 2>&1 || rc=$?
    [ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "wine msiexec $verb $(basename "$pkg") /qn $* did not finish within $MSIEXEC_TIMEOUT s"
}

# msiexec VERB [PACKAGE [PROPERTY=VALUE...]]: install (/i) or uninstall (/x),
# which must succeed. PACKAGE defaults to the MSI under test.
msiexec() {
    local verb=$1 pkg=${2:-$msi}
    shift $(($# < 2 ? $# : 2))
    if [ "$verb" = /i ]; then
        may_be_installed+=("$pkg")
    fi
    run_msiexec "$verb" "$pkg" "$@"
    if [ $rc -ne 0 ]; then
        cat "$work/msiexec.log" >&2
        fail "wine msiexec $verb $(basename "$pkg") /qn $* exited with $rc"
    fi
    if [ "$verb" = /x ]; then
        forget_installed "$pkg"
    fi
}

# forget_installed PACKAGE: the cleanup need not uninstall it.
forget_installed() {
    local kept=() p
    for p in ${may_be_installed[@]+"${may_be_installed[@]}"}; do
        [ "$p" = "$1" ] || kept+=("$p")
    done
    may_be_installed=(${kept[@]+"${kept[@]}"})
}

check_installed() {
    [ -f "$UNIX_DIR/bapiws.exe" ] || fail "$1: $UNIX_DIR/bapiws.exe is missing after install"
    [ -f "$UNIX_DIR/bapiwsw.exe" ] || fail "$1: $UNIX_DIR/bapiwsw.exe (the windowless build) is missing after install"
    for f in README.md LICENSE.txt; do
        [ -f "$UNIX_DIR/$f" ] || fail "$1: $UNIX_DIR/$f is missing after install"
    done
    if [ -n "${BAPIWS_EXE:-}" ]; then
        cmp -s "$BAPIWS_EXE" "$UNIX_DIR/bapiws.exe" \
            || fail "$1: installed bapiws.exe differs from BAPIWS_EXE=$BAPIWS_EXE"
    fi
    expect_reg "$RUN" bapiws "REG_SZ $RUN_DATA" "$1 (autostart entry)"
    check_link_keys "$1" "${2:-}"
}

check_removed() {
    [ ! -e "$UNIX_DIR" ] || fail "$1: $UNIX_DIR still exists after uninstall: $(ls -A "$UNIX_DIR" | tr '\n' ' ')"
    expect_reg "$RUN" bapiws "" "$1 (autostart entry)"
    check_link_keys_removed "$1" "${2:-}"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

step "preconditions: $WINEPREFIX is clean"
[ ! -e "$UNIX_DIR" ] || fail "$UNIX_DIR already exists; use a fresh prefix"
for view in /reg:64 /reg:32; do
    expect_reg "$SETTINGS" Port "" "before the test" $view
    expect_reg "$SETTINGS" AllowedOrigins "" "before the test" $view
done
expect_reg "$RUN" bapiws "" "before the test"
expect_reg "$SETTINGS" DefaultBackend "" "before the test"
! key_exists "$SIP_SETTINGS" || fail "$SIP_SETTINGS exists before the test; use a fresh prefix"
check_link_keys_removed "before the test"

# (a) ------------------------------------------------------------------
step "install $(basename "$msi")"
msiexec /i
check_installed "install"
expect_reg "$SETTINGS" Port "REG_SZ 9898" "install (default Port)"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ *" "install (default AllowedOrigins)"
# Without SIP_ACCOUNT, nothing of the built-in phone.
expect_reg "$SETTINGS" DefaultBackend "" "install without SIP_ACCOUNT"
! key_exists "$SIP_SETTINGS" || fail "install without SIP_ACCOUNT wrote $SIP_SETTINGS"
! key_exists "$SAVED" || fail "install without SIP_ACCOUNT wrote $SAVED"
echo "    $WIN_EXE, Port=9898, AllowedOrigins=*, Run=$RUN_DATA"
echo "    $CLASSES\{tel,callto,sip,sips,bapiws.url}\shell\open\command=$LINK_DATA; Default apps capabilities"

step "autostart beside the MSI's machine-wide entry: status shows it, enable refuses a second"
out=$(timeout 30 "$WINE" "$WIN_EXE" autostart status </dev/null 2>&1 | tr -d '\r') \
    || fail "autostart status failed: $out"
case "$out" in
    *"machine-wide entry: HKLM\Software\Microsoft\Windows\CurrentVersion\Run"*) ;;
    *) fail "autostart status does not show the machine-wide entry: $out" ;;
esac
rc=0
out=$(timeout 30 "$WINE" "$WIN_EXE" autostart enable </dev/null 2>&1 | tr -d '\r') || rc=$?
[ $rc -ne 0 ] || fail "autostart enable succeeded beside the machine-wide entry: $out"
case "$out" in
    *"already starts at login for every user"*) ;;
    *) fail "autostart enable's refusal does not say why: $out" ;;
esac
expect_reg 'HKCU\Software\Microsoft\Windows\CurrentVersion\Run' bapiws "" "autostart enable beside the MSI"
# The exe for the newer package of (g).
cp -- "$UNIX_DIR/bapiws.exe" "$work/bapiws.exe"
cp -- "$UNIX_DIR/bapiwsw.exe" "$work/bapiwsw.exe"

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

step "wine start tel:+358401234567: the MSI's URL protocol key runs bapiws dial, which calls through the server"
# The settings say Port 9898; BAPIWS_PORT (which comes first) points dial at this server.
BAPIWS_PORT=$port timeout -k 5 60 "$WINE" start 'tel:+358401234567' </dev/null >"$work/start.log" 2>&1 \
    || { cat "$work/start.log" >&2; fail "wine start tel:+358401234567 failed"; }
calls=
for _ in $(seq 1 60); do   # 30 s
    calls=$(timeout 30 "$WINE" "$WIN_EXE" calls --url "ws://127.0.0.1:$port" </dev/null 2>&1 | tr -d '\r' || true)
    case "$calls" in *+358401234567*) break ;; esac
    sleep 0.5
done
case "$calls" in
    *Outbound*+358401234567*) echo "    $(printf '%s\n' "$calls" | tail -1)" ;;
    *) fail "wine start tel:+358401234567 placed no call: $calls" ;;
esac

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
step "administrator's Port and AllowedOrigins, and another program's callto: handler, survive install and uninstall"
set_value /reg:64 Port REG_SZ 19555
set_value /reg:64 AllowedOrigins REG_SZ https://crm.example.com
expect_reg "$SETTINGS" Port "REG_SZ 19555" "reg add"
test_keys+=("$CLASSES\\callto")
wine_reg add "$CLASSES\\callto\\shell\\open\\command" /ve /t REG_SZ /d "$OTHER_CALLTO" /f >/dev/null \
    || fail "wine reg add $CLASSES\\callto\\shell\\open\\command failed"
msiexec /i
check_installed "install over administrator's settings" other-callto
expect_reg "$SETTINGS" Port "REG_SZ 19555" "install over administrator's settings"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ https://crm.example.com" "install over administrator's settings"
[ "$(reg_default "$CLASSES\\callto\\shell\\open\\command")" = "REG_SZ $OTHER_CALLTO" ] \
    || fail "install replaced another program's callto: handler: $(reg_default "$CLASSES\\callto\\shell\\open\\command")"
msiexec /x
check_removed "uninstall with administrator's settings" other-callto
expect_reg "$SETTINGS" Port "REG_SZ 19555" "uninstall with administrator's settings"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ https://crm.example.com" "uninstall with administrator's settings"
[ "$(reg_default "$CLASSES\\callto\\shell\\open\\command")" = "REG_SZ $OTHER_CALLTO" ] \
    || fail "uninstall removed another program's callto: handler: $(reg_default "$CLASSES\\callto\\shell\\open\\command")"
delete_value /reg:64 Port
delete_value /reg:64 AllowedOrigins
wine_reg delete "$CLASSES\\callto" /f >/dev/null || fail "wine reg delete $CLASSES\\callto failed"
test_keys=()

# (e) ------------------------------------------------------------------
step "administrator's REG_DWORD Port kept; missing AllowedOrigins defaulted, then removed"
set_value /reg:64 Port REG_DWORD 19556
expect_reg "$SETTINGS" Port "REG_DWORD 0x4c64" "reg add"
msiexec /i
check_installed "install with only Port set"
expect_reg "$SETTINGS" Port "REG_DWORD 0x4c64" "install with only Port set"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ *" "install with only Port set"
msiexec /x
check_removed "uninstall with only Port set"
expect_reg "$SETTINGS" Port "REG_DWORD 0x4c64" "uninstall with only Port set"
expect_reg "$SETTINGS" AllowedOrigins "" "uninstall with only Port set"
delete_value /reg:64 Port

# (f) ------------------------------------------------------------------
step "administrator's Port and AllowedOrigins in the 32-bit view only: no 64-bit default"
set_value /reg:32 Port REG_SZ 19557
set_value /reg:32 AllowedOrigins REG_SZ https://crm32.example.com
expect_reg "$SETTINGS" Port "REG_SZ 19557" "reg add /reg:32" /reg:32
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ https://crm32.example.com" "reg add /reg:32" /reg:32
expect_reg "$SETTINGS" Port "" "reg add /reg:32 (64-bit view)"
expect_reg "$SETTINGS" AllowedOrigins "" "reg add /reg:32 (64-bit view)"
msiexec /i
check_installed "install over 32-bit settings"
expect_reg "$SETTINGS" Port "" "install over 32-bit settings (64-bit default Port)"
expect_reg "$SETTINGS" AllowedOrigins "" "install over 32-bit settings (64-bit default AllowedOrigins)"
msiexec /x
check_removed "uninstall with 32-bit settings"
expect_reg "$SETTINGS" Port "REG_SZ 19557" "uninstall with 32-bit settings" /reg:32
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ https://crm32.example.com" "uninstall with 32-bit settings" /reg:32
expect_reg "$SETTINGS" Port "" "uninstall with 32-bit settings (64-bit view)"
expect_reg "$SETTINGS" AllowedOrigins "" "uninstall with 32-bit settings (64-bit view)"
delete_value /reg:32 Port
delete_value /reg:32 AllowedOrigins

# (g) ------------------------------------------------------------------
# msi_property PACKAGE NAME: a value of the package's Property table.
msi_property() {
    msiinfo export "$1" Property | tr -d '\r' | awk -F '\t' -v name="$2" '$1 == name { print $2; exit }'
}
# is_registered PRODUCTCODE: Windows Installer lists it under Uninstall.
is_registered() {
    wine_reg query "HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\\$1" /reg:64 >/dev/null 2>&1
}
# run_entries VIEW: the Run values naming bapiws, one a line.
run_entries() {
    { wine_reg query "$RUN" "$1" 2>/dev/null || true; } | tr -d '\r' | grep -i bapiws || true
}

version=$(msi_property "$msi" ProductVersion)
code=$(msi_property "$msi" ProductCode)
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || fail "$(basename "$msi"): ProductVersion '$version' is not X.Y.Z"
newer_version=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1))
newer=$work/newer/bapiws-$newer_version.msi
step "major upgrade: build $newer_version from the same exe"
BAPIWS_MSI_VERSION=$newer_version bash "$repo/scripts/windows-msi.sh" "$work/bapiws.exe" "$newer" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; fail "scripts/windows-msi.sh with BAPIWS_MSI_VERSION=$newer_version failed"; }
[ "$(msi_property "$newer" ProductVersion)" = "$newer_version" ] || fail "$newer: ProductVersion is not $newer_version"
newer_code=$(msi_property "$newer" ProductCode)
[ -n "$code" ] && [ -n "$newer_code" ] && [ "$code" != "$newer_code" ] \
    || fail "the two packages need distinct ProductCodes (got '$code' and '$newer_code')"

step "install $version, then $newer_version over it"
msiexec /i
check_installed "install $version"
is_registered "$code" || fail "install $version: $code is not registered"
msiexec /i "$newer"
check_installed "upgrade to $newer_version"
expect_reg "$SETTINGS" Port "REG_SZ 9898" "upgrade to $newer_version (default Port)"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ *" "upgrade to $newer_version (default AllowedOrigins)"
entries=$(run_entries /reg:64)
[ "$(printf '%s\n' "$entries" | grep -c .)" -eq 1 ] \
    || fail "upgrade to $newer_version: expected exactly one Run entry for bapiws, got: $entries"
[ -z "$(run_entries /reg:32)" ] || fail "upgrade to $newer_version: Run entry in the 32-bit view: $(run_entries /reg:32)"
is_registered "$newer_code" || fail "upgrade to $newer_version: $newer_code is not registered"
! is_registered "$code" || fail "upgrade to $newer_version: the older $code is still registered"
echo "    one installation ($newer_version), Port=9898, AllowedOrigins=*, one Run entry"

step "installing $version over $newer_version is refused"
may_be_installed+=("$msi")
run_msiexec /i "$msi"
[ $rc -ne 0 ] || fail "installing $version over $newer_version succeeded; the downgrade must be refused"
echo "    wine msiexec /i exited with $rc"
check_installed "refused downgrade"
is_registered "$newer_code" || fail "refused downgrade: $newer_code is no longer registered"
! is_registered "$code" || fail "refused downgrade: $code got registered"

step "uninstall $newer_version"
msiexec /x "$newer"
check_removed "uninstall $newer_version"
expect_reg "$SETTINGS" Port "" "uninstall $newer_version (default Port)"
expect_reg "$SETTINGS" AllowedOrigins "" "uninstall $newer_version (default AllowedOrigins)"
! is_registered "$newer_code" || fail "uninstall $newer_version: $newer_code is still registered"
! is_registered "$code" || fail "uninstall $newer_version: $code is registered"
# The refused downgrade installed nothing.
forget_installed "$msi"

# (h) ------------------------------------------------------------------
# free_udp_port: a UDP port of 127.0.0.1 nobody holds now.
free_udp_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# udp_port_taken PORT
udp_port_taken() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}
# refused WHAT PROPERTY=VALUE...: installing with these properties fails and
# leaves nothing behind.
refused() {
    local what=$1
    shift
    may_be_installed+=("$msi")
    run_msiexec /i "$msi" "$@"
    [ $rc -ne 0 ] || fail "install with $what succeeded; it must be refused"
    ! is_registered "$code" || fail "install with $what: $code got registered"
    [ ! -e "$UNIX_DIR" ] || fail "install with $what left $UNIX_DIR"
    ! key_exists "$SIP_SETTINGS" || fail "install with $what wrote $SIP_SETTINGS"
    ! key_exists "$SAVED" || fail "install with $what wrote $SAVED"
    expect_reg "$SETTINGS" DefaultBackend "" "install with $what"
    expect_reg "$SETTINGS" Port "" "install with $what"
    forget_installed "$msi"
    echo "    $what: refused (wine msiexec exited with $rc)"
}
# check_sip_values WHAT: the values the install of this step wrote.
check_sip_values() {
    expect_reg "$SIP_SETTINGS" account "REG_EXPAND_SZ $sip_account" "$1 (sip account)"
    expect_reg "$SIP_SETTINGS" registrar "REG_SZ 127.0.0.1:$kamailio_port" "$1 (sip registrar)"
    expect_reg "$SIP_SETTINGS" transport "REG_SZ $sip_transport" "$1 (sip transport)"
    expect_reg "$SIP_SETTINGS" auth_user "REG_EXPAND_SZ $sip_auth_user" "$1 (sip auth_user)"
    expect_reg "$SETTINGS" DefaultBackend "REG_SZ sip" "$1 (DefaultBackend)"
    expect_reg "$SIP_SETTINGS" keepalive_secs "REG_SZ 15" "$1 (administrator's sip keepalive_secs)"
    expect_reg "$SAVED" SIP_ACCOUNT "REG_SZ $sip_account" "$1 (saved SIP_ACCOUNT)"
    expect_reg "$SAVED" SIP_REGISTRAR "REG_SZ 127.0.0.1:$kamailio_port" "$1 (saved SIP_REGISTRAR)"
    expect_reg "$SAVED" SIP_TRANSPORT "REG_SZ $sip_transport" "$1 (saved SIP_TRANSPORT)"
    expect_reg "$SAVED" SIP_AUTH_USER "REG_SZ $sip_auth_user" "$1 (saved SIP_AUTH_USER)"
}

step "SIP properties: bad ones are refused before anything is written"
refused "SIP_TRANSPORT=tls" 'SIP_ACCOUNT=sip:%USERNAME%@127.0.0.1' SIP_TRANSPORT=tls
refused "SIP_ACCOUNT without sip:" 'SIP_ACCOUNT=%USERNAME%@127.0.0.1'
refused "SIP_REGISTRAR without SIP_ACCOUNT" SIP_REGISTRAR=127.0.0.1:5060

wine_user=$(timeout -k 5 30 "$WINE" cmd /c 'echo %USERNAME%' </dev/null 2>/dev/null | tr -d '\r\n') \
    || fail "wine cmd /c echo %USERNAME% failed"
[[ $wine_user =~ ^[A-Za-z0-9._-]+$ ]] || fail "the Wine user's name '$wine_user' is not one this test can register"
kamailio_port=$(free_udp_port)
far_port=$(free_udp_port)
step "kamailio on udp:127.0.0.1:$kamailio_port (the Wine user is $wine_user)"
mkdir -p "$work/kamailio"
setsid kamailio -f "$repo/tests/sip/kamailio.cfg" -DD -E -m 32 -M 4 -w "$work/kamailio" \
    -P "$work/kamailio/pid" -l "udp:127.0.0.1:$kamailio_port" \
    -A "FAR_END=\"127.0.0.1:$far_port\"" -A MAX_EXPIRES=60 \
    </dev/null >/dev/null 2>"$work/kamailio/log" &
kamailio_pid=$!
for _ in $(seq 1 40); do   # 10 s
    udp_port_taken "$kamailio_port" && break
    kill -0 "$kamailio_pid" 2>/dev/null || fail "kamailio exited at start: $(cat "$work/kamailio/log")"
    sleep 0.25
done
udp_port_taken "$kamailio_port" || fail "kamailio does not listen on udp:127.0.0.1:$kamailio_port within 10 s"

sip_account='sip:%USERNAME%@127.0.0.1'
sip_auth_user='auth-%USERNAME%'
sip_transport=udp
step "install with SIP_ACCOUNT=$sip_account SIP_REGISTRAR=127.0.0.1:$kamailio_port SIP_TRANSPORT=udp SIP_AUTH_USER=$sip_auth_user"
test_keys+=("$SIP_SETTINGS")
set_value /reg:64 keepalive_secs REG_SZ 15 "$SIP_SETTINGS"
sip_installed=1
msiexec /i "$msi" "SIP_ACCOUNT=$sip_account" "SIP_REGISTRAR=127.0.0.1:$kamailio_port" \
    "SIP_TRANSPORT=$sip_transport" "SIP_AUTH_USER=$sip_auth_user"
check_installed "install with the SIP properties"
check_sip_values "install with the SIP properties"
expect_reg "$SETTINGS" Port "REG_SZ 9898" "install with the SIP properties (default Port)"
echo "    $SIP_SETTINGS: account, auth_user REG_EXPAND_SZ, registrar, transport REG_SZ; DefaultBackend=sip"

# start_sip_server [VARIABLE=VALUE...]: the installed server with the phone's
# local addresses and audio as flags (the account from the registry), in the
# environment given; stopped by closing its standard input (fd 7).
start_sip_server() {
    port=$(free_port)
    local sip_port rtp_base
    sip_port=$(free_udp_port)
    rtp_base=$(free_udp_port)
    rtp_base=$((rtp_base - rtp_base % 2))
    [ "$rtp_base" -le 65500 ] || rtp_base=40000
    rm -f -- "$work/server.stdin"
    mkfifo "$work/server.stdin"
    env "$@" "$WINE" "$WIN_EXE" serve --exit-on-stdin-close --port "$port" \
        --sip-listen "127.0.0.1:$sip_port" --sip-rtp-ports "$rtp_base-$((rtp_base + 9))" \
        --sip-audio-source silence --sip-audio-sink discard \
        <"$work/server.stdin" >"$work/server.log" 2>&1 &
    server_pid=$!
    # The write end, held until the server is to stop (its open returns once
    # the server's side is open, which the shell starting it does first).
    exec 7>"$work/server.stdin"
}

# wait_sip_registered: /health says the sip backend is the default, running,
# registered and Available (within 30 s); prints /health.
wait_sip_registered() {
    local health=
    for _ in $(seq 1 120); do   # 30 s
        kill -0 "$server_pid" 2>/dev/null \
            || fail "the installed server exited (a sip setting refused? its output follows)"
        health=$(python3 - "$port" <<'PY' 2>/dev/null || true
import json, sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=5) as r:
    h = json.loads(r.read().decode())
sip = [b for b in h["backends"] if b["name"] == "sip"]
if h["default_backend"] == "sip" and sip and sip[0]["running"] and sip[0]["link"] == "registered" and sip[0]["state"] == "Available":
    print(json.dumps(h))
PY
)
        [ -n "$health" ] && break
        sleep 0.25
    done
    if [ -z "$health" ]; then
        health=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=5).read().decode())' "$port" 2>&1 || true)
        fail "/health does not show the sip backend registered and Available (and the default) within 30 s: $health"
    fi
    echo "    $health"
}

# stop_sip_server: close its standard input; it must exit 0 within 20 s.
stop_sip_server() {
    exec 7>&-
    for _ in $(seq 1 80); do   # 20 s
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -0 "$server_pid" 2>/dev/null && fail "the server did not exit within 20 s of its standard input closing"
    rc=0
    wait "$server_pid" || rc=$?
    server_pid=
    [ $rc -eq 0 ] || fail "the server exited with $rc after its standard input closed, expected 0"
    rm -f -- "$work/server.log" "$work/server.stdin"
}

# kamailio.cfg's TEST_PASSWORD.
sip_password='s3cret@#=&!'
step "run the installed server, the password in BAPIWS_SIP_PASSWORD: the phone registers with the registry's settings"
start_sip_server "BAPIWS_SIP_PASSWORD=$sip_password"
wait_sip_registered
# kamailio logs it just after its 200 OK.
saved="REGISTER-SAVED sip:$wine_user@127.0.0.1 auth-$wine_user"
for _ in $(seq 1 20); do   # 5 s
    grep -q -- "$saved\$" "$work/kamailio/log" && break
    sleep 0.25
done
grep -q -- "$saved\$" "$work/kamailio/log" \
    || fail "kamailio's log has no '$saved' (%USERNAME% did not become the Wine user's name?): $(grep REGISTER-SAVED "$work/kamailio/log" || true)"
echo "    kamailio: $saved"
step "stop the server by closing its standard input"
stop_sip_server

step "again, the password in a per-user file: sip\\password_file = %APPDATA%\\bapiws\\sip-password (REG_EXPAND_SZ)"
appdata=$(timeout -k 5 30 "$WINE" cmd /c 'echo %APPDATA%' </dev/null 2>/dev/null | tr -d '\r\n') \
    || fail "wine cmd /c echo %APPDATA% failed"
unix_appdata=$(timeout -k 5 30 winepath -u "$appdata" 2>/dev/null) || fail "winepath -u $appdata failed"
[ -d "$unix_appdata" ] || fail "the Wine user's %APPDATA% ($appdata, $unix_appdata) is not a folder"
password_dir="$unix_appdata/bapiws"
[ ! -e "$password_dir/sip-password" ] || fail "$password_dir/sip-password exists before the test"
if [ ! -d "$password_dir" ]; then
    mkdir -- "$password_dir"
    password_dir_made=1
fi
password_file=$password_dir/sip-password
# As Notepad writes it: CRLF.
printf '%s\r\n' "$sip_password" >"$password_file"
set_value /reg:64 password_file REG_EXPAND_SZ '%APPDATA%\bapiws\sip-password' "$SIP_SETTINGS"
start_sip_server
wait_sip_registered
stop_sip_server
delete_value /reg:64 password_file "$SIP_SETTINGS"
rm -f -- "$password_file"
password_file=
[ -z "$password_dir_made" ] || rmdir -- "$password_dir"
password_dir_made=

step "again, the password in the Windows Credential Manager: sip set-password, then sip\\password_store = keyring"
printf '%s\n' "$sip_password" | timeout -k 5 60 "$WINE" "$WIN_EXE" sip set-password >"$work/set-password.log" 2>&1 \
    || fail "bapiws sip set-password failed: $(cat "$work/set-password.log")"
set_value /reg:64 password_store REG_SZ keyring "$SIP_SETTINGS"
start_sip_server
wait_sip_registered
stop_sip_server
# Nowhere under the prefix (the registry's files, the log in %TEMP%, the profile) is the
# password in clear; Wine keeps the credential encrypted.
leaks=$(grep -rlF -- "$sip_password" "$WINEPREFIX" 2>/dev/null || true)
[ -z "$leaks" ] || fail "the password is in clear in: $leaks"
grep -qF -- "$sip_password" "$work/set-password.log" && fail "set-password printed the password"
timeout -k 5 60 "$WINE" "$WIN_EXE" sip forget-password </dev/null >"$work/forget.log" 2>&1 \
    || fail "bapiws sip forget-password failed: $(cat "$work/forget.log")"
# Without the entry the server refuses to start, saying what to do.
rc=0
timeout -k 5 60 "$WINE" "$WIN_EXE" serve --port "$port" </dev/null >"$work/no-entry.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "no password stored" "$work/no-entry.log" \
    || fail "without a stored password, serve should exit 2 saying so; got $rc: $(cat "$work/no-entry.log")"
delete_value /reg:64 password_store "$SIP_SETTINGS"
rm -f -- "$work/set-password.log" "$work/forget.log" "$work/no-entry.log"
stop_kamailio

step "repair without the properties: the SIP values are written again, not emptied"
wine_reg delete "$SIP_SETTINGS" /v registrar /f /reg:64 >/dev/null \
    || fail "wine reg delete $SIP_SETTINGS /v registrar failed"
msiexec /i "$msi" REINSTALL=ALL REINSTALLMODE=omus
check_sip_values "repair"

step "upgrade to $newer_version with SIP_TRANSPORT=tcp alone: transport changes, the other SIP values stay"
msiexec /i "$newer" SIP_TRANSPORT=tcp
sip_transport=tcp
check_installed "upgrade to $newer_version with the SIP values"
check_sip_values "upgrade to $newer_version"
is_registered "$newer_code" || fail "upgrade to $newer_version: $newer_code is not registered"
! is_registered "$code" || fail "upgrade to $newer_version: the older $code is still registered"

step "uninstall $newer_version: the SIP values and DefaultBackend go, the administrator's keepalive_secs stays"
msiexec /x "$newer"
forget_installed "$msi"
check_removed "uninstall with the SIP values"
for name in account registrar transport auth_user; do
    expect_reg "$SIP_SETTINGS" "$name" "" "uninstall (sip $name)"
done
expect_reg "$SETTINGS" DefaultBackend "" "uninstall (DefaultBackend)"
expect_reg "$SIP_SETTINGS" keepalive_secs "REG_SZ 15" "uninstall (administrator's sip keepalive_secs)"
expect_reg "$SETTINGS" Port "" "uninstall (default Port)"
! key_exists "$SAVED" || fail "uninstall left $SAVED"
delete_value /reg:64 keepalive_secs "$SIP_SETTINGS"
wine_reg delete "$SIP_SETTINGS" /f >/dev/null || fail "wine reg delete $SIP_SETTINGS failed"
test_keys=()
sip_installed=

step "MSI test passed"

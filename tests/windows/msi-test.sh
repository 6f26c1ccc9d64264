#!/usr/bin/env bash
# Install, run and uninstall the bapiws MSI under Wine, and check what it
# leaves behind.
#
#   WINEPREFIX=/path/to/prefix tests/windows/msi-test.sh bapiws.msi
#
# Needs: a 64-bit Wine prefix in which Rust programs run (on Wine 8 that
# means system32\bcryptprimitives.dll, see scripts/windows-test.sh) where
# bapiws is not installed and HKLM\Software\Benemen\BAPIWS holds no Port or
# AllowedOrigins in either registry view; wine, python3, and wixl and
# msitools (msiinfo) to build the newer package of step (g). Optional:
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
# cannot be installed over it, uninstall it and check nothing is left.
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
if [ -n "${BAPIWS_EXE:-}" ]; then
    [ -f "$BAPIWS_EXE" ] || fail "BAPIWS_EXE=$BAPIWS_EXE: no such file"
fi

SETTINGS='HKLM\Software\Benemen\BAPIWS'
RUN='HKLM\Software\Microsoft\Windows\CurrentVersion\Run'
WIN_DIR='C:\Program Files\bapiws'
WIN_EXE="$WIN_DIR\\bapiws.exe"
UNIX_DIR="$WINEPREFIX/drive_c/Program Files/bapiws"
RUN_DATA="\"$WIN_EXE\" serve"
CLASSES='HKLM\Software\Classes'
CAPABILITIES='HKLM\Software\bapiws\Capabilities'
REGISTERED='HKLM\Software\RegisteredApplications'
LINK_DATA="\"$WIN_EXE\" dial -- \"%1\""
LINK_KEYS=(tel callto sip sips bapiws.url)
OTHER_CALLTO='"C:\other\phone.exe" "%1"'

work=$(mktemp -d "${TMPDIR:-/tmp}/bapiws-msi-test.XXXXXX")
server_pid=
# What the cleanup undoes: packages this test may have left installed (each
# added before its install starts, dropped after its uninstall succeeded),
# and settings values this test added, as "VIEW NAME" (dropped once the
# test deleted them itself).
may_be_installed=()
test_values=()
# Keys this test added (another program's handler), deleted by the cleanup.
test_keys=()

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
    local i pkg value
    # Newest first: a newer package installed over an older one is the one
    # registered.
    for ((i = ${#may_be_installed[@]} - 1; i >= 0; i--)); do
        pkg=${may_be_installed[i]}
        echo "cleanup: wine msiexec /x $pkg /qn (errors ignored)" >&2
        timeout -k 5 "$MSIEXEC_TIMEOUT" "$WINE" msiexec /x "$pkg" /qn </dev/null >/dev/null 2>&1 || true
    done
    for value in ${test_values[@]+"${test_values[@]}"}; do
        echo "cleanup: wine reg delete $SETTINGS /v ${value#* } /f ${value%% *} (errors ignored)" >&2
        timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$SETTINGS" /v "${value#* }" /f "${value%% *}" </dev/null >/dev/null 2>&1 || true
    done
    for value in ${test_keys[@]+"${test_keys[@]}"}; do
        echo "cleanup: wine reg delete $value /f (errors ignored)" >&2
        timeout -k 5 "$REG_TIMEOUT" "$WINE" reg delete "$value" /f </dev/null >/dev/null 2>&1 || true
    done
    rm -rf -- "$work"
    exit $rc
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

# set_value VIEW NAME TYPE DATA / delete_value VIEW NAME: an administrator's
# setting, added and deleted by this test (and by the cleanup if need be).
set_value() {
    test_values+=("$1 $2")
    wine_reg add "$SETTINGS" /v "$2" /t "$3" /d "$4" /f "$1" >/dev/null \
        || fail "wine reg add $SETTINGS /v $2 $1 failed"
}
delete_value() {
    wine_reg delete "$SETTINGS" /v "$2" /f "$1" >/dev/null \
        || fail "wine reg delete $SETTINGS /v $2 $1 failed"
    local kept=() v
    for v in ${test_values[@]+"${test_values[@]}"}; do
        [ "$v" = "$1 $2" ] || kept+=("$v")
    done
    test_values=(${kept[@]+"${kept[@]}"})
}

# run_msiexec VERB PACKAGE: wine msiexec VERB PACKAGE /qn, bounded; sets rc
# and leaves the output in $work/msiexec.log.
run_msiexec() {
    rc=0
    timeout -k 5 "$MSIEXEC_TIMEOUT" "$WINE" msiexec "$1" "$2" /qn </dev/null >"$work/msiexec.log" 2>&1 || rc=$?
    [ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "wine msiexec $1 $(basename "$2") /qn did not finish within $MSIEXEC_TIMEOUT s"
}

# msiexec VERB [PACKAGE]: install (/i) or uninstall (/x), which must succeed.
# PACKAGE defaults to the MSI under test.
msiexec() {
    local verb=$1 pkg=${2:-$msi}
    if [ "$verb" = /i ]; then
        may_be_installed+=("$pkg")
    fi
    run_msiexec "$verb" "$pkg"
    if [ $rc -ne 0 ]; then
        cat "$work/msiexec.log" >&2
        fail "wine msiexec $verb $(basename "$pkg") /qn exited with $rc"
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
check_link_keys_removed "before the test"

# (a) ------------------------------------------------------------------
step "install $(basename "$msi")"
msiexec /i
check_installed "install"
expect_reg "$SETTINGS" Port "REG_SZ 9898" "install (default Port)"
expect_reg "$SETTINGS" AllowedOrigins "REG_SZ *" "install (default AllowedOrigins)"
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

step "MSI test passed"

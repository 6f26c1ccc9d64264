#!/usr/bin/env bash
# Build the Windows Installer package (MSI) for bapiws with Debian's wixl.
#
#   scripts/windows-msi.sh EXE OUT.msi
#
# EXE is a Windows build of bapiws (x86_64-pc-windows-gnu); OUT.msi is
# written (its folder is created). The package version is the [package]
# version in Cargo.toml, without any pre-release or build suffix, unless
# the environment variable BAPIWS_MSI_VERSION=X.Y.Z overrides it (used by
# tests/windows/msi-test.sh to build a newer package for its upgrade test).
# Runs from any folder. Needs Debian's wixl and msitools packages.
set -euo pipefail

usage() { echo "usage: $0 EXE OUT.msi" >&2; exit 2; }
[ $# -eq 2 ] || usage

exe=$1
out=$2

if ! command -v wixl >/dev/null 2>&1; then
    echo "error: wixl not found; install Debian's \`wixl' package (apt-get install wixl)" >&2
    exit 1
fi
if ! command -v msibuild >/dev/null 2>&1 || ! command -v msiinfo >/dev/null 2>&1; then
    echo "error: msibuild/msiinfo not found; install Debian's \`msitools' package (apt-get install msitools)" >&2
    exit 1
fi
[ -f "$exe" ] || { echo "error: $exe: no such file" >&2; exit 1; }

# Absolute paths before changing folder.
exe=$(realpath -- "$exe")
mkdir -p -- "$(dirname -- "$out")"
out=$(realpath -- "$out")

cd -- "$(dirname -- "$0")/.."
root=$(pwd)
wxs=$root/packaging/windows/bapiws.wxs

# Windows Installer versions are numeric major.minor.build, each part at
# most 255.255.65535.
valid_msi_version() {
    local a b c
    [[ $1 =~ ^(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})$ ]] || return 1
    a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]} c=${BASH_REMATCH[3]}
    [ "$a" -le 255 ] && [ "$b" -le 255 ] && [ "$c" -le 65535 ]
}

if [ -n "${BAPIWS_MSI_VERSION:-}" ]; then
    msi_version=$BAPIWS_MSI_VERSION
    if ! valid_msi_version "$msi_version"; then
        echo "error: BAPIWS_MSI_VERSION='$msi_version' is not an MSI version X.Y.Z (X, Y <= 255, Z <= 65535)" >&2
        exit 2
    fi
else
    # The first `version = "..."` inside [package].
    version=$(awk '
        /^\[/ { in_pkg = ($0 == "[package]") }
        in_pkg && /^version[[:space:]]*=/ {
            sub(/^version[[:space:]]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
        }' Cargo.toml)
    # Drop a pre-release or build suffix such as -rc.1 or +meta.
    msi_version=${version%%[-+]*}
    if ! valid_msi_version "$msi_version"; then
        echo "error: cannot use Cargo.toml version '$version' as an MSI version" >&2
        exit 1
    fi
fi

# wixl 0.101 looks up File sources only relative to its working folder
# (absolute paths fail), so stage the payload in one folder.
stage=$(mktemp -d "${TMPDIR:-/tmp}/bapiws-msi.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT
cp -- "$exe" "$stage/bapiws.exe"
# The windowless build (src/bin/bapiwsw.rs), built beside it, starts at login.
windowless="$(dirname -- "$exe")/bapiwsw.exe"
[ -f "$windowless" ] || { echo "error: $windowless is missing (cargo build --bins builds it beside bapiws.exe)" >&2; exit 1; }
cp -- "$windowless" "$stage/bapiwsw.exe"
for f in README.md LICENSE; do
    [ -f "$f" ] || { echo "error: $root/$f is missing" >&2; exit 1; }
    cp -- "$f" "$stage/"
done
defines=(-D Version="$msi_version")
if [ -f docs/windows.md ]; then
    cp -- docs/windows.md "$stage/windows.md"
    defines+=(-D WindowsDoc=1)
else
    echo "warning: docs/windows.md not found; building the MSI without it" >&2
fi

rm -f -- "$out"
(cd -- "$stage" && wixl --arch x64 "${defines[@]}" -o "$out" "$wxs")

# wixl 0.101 cannot put a Condition on a Component; add the "only where
# absent" conditions of the two settings components (see the .wxs header):
# absent from the 64-bit view (BAPIWS_PORT) and from the 32-bit view
# (BAPIWS_PORT32). The WIX_UPGRADE_DETECTED half rewrites an unchanged
# 64-bit default during a major upgrade, in case the old version's removal
# deleted it (Wine's msiexec removes it without setting
# UPGRADINGPRODUCTCODE).
port_cond='(NOT BAPIWS_PORT AND NOT BAPIWS_PORT32) OR (WIX_UPGRADE_DETECTED AND BAPIWS_PORT="9898")'
origins_cond='(NOT BAPIWS_ORIGINS AND NOT BAPIWS_ORIGINS32) OR (WIX_UPGRADE_DETECTED AND BAPIWS_ORIGINS="*")'
msibuild "$out" -q "UPDATE \`Component\` SET \`Condition\` = '$port_cond' WHERE \`Component\` = 'CmpDefaultPort'"
msibuild "$out" -q "UPDATE \`Component\` SET \`Condition\` = '$origins_cond' WHERE \`Component\` = 'CmpDefaultOrigins'"
# The URL protocol keys (see the .wxs header): only where the key's command is
# absent or a bapiws.exe's (~>< is "contains", ignoring case).
for scheme in Tel Callto Sip Sips; do
    prop=BAPIWS_$(printf '%s' "$scheme" | tr '[:lower:]' '[:upper:]')
    cond="NOT $prop OR $prop ~>< \"bapiws.exe\""
    msibuild "$out" -q "UPDATE \`Component\` SET \`Condition\` = '$cond' WHERE \`Component\` = 'CmpLink$scheme'"
    got=$(msiinfo export "$out" Component | awk -F'\t' -v c="CmpLink$scheme" '$1 == c { print $5 }')
    if [ "$got" != "$cond" ]; then
        echo "error: setting the condition of CmpLink$scheme in $out failed (got: $got)" >&2
        rm -f -- "$out"
        exit 1
    fi
done
# The built-in SIP phone's values (see the .wxs header): only with SIP_ACCOUNT,
# and each with its own property.
set_condition() {
    msibuild "$out" -q "UPDATE \`Component\` SET \`Condition\` = '$2' WHERE \`Component\` = '$1'"
    local got
    got=$(msiinfo export "$out" Component | awk -F'\t' -v c="$1" '$1 == c { print $5 }')
    if [ "$got" != "$2" ]; then
        echo "error: setting the condition of $1 in $out failed (got: $got)" >&2
        rm -f -- "$out"
        exit 1
    fi
}
set_condition CmpSipAccount 'SIP_ACCOUNT'
set_condition CmpSipRegistrar 'SIP_ACCOUNT AND SIP_REGISTRAR'
set_condition CmpSipTransport 'SIP_ACCOUNT AND SIP_TRANSPORT'
set_condition CmpSipAuthUser 'SIP_ACCOUNT AND SIP_AUTH_USER'
set_condition CmpSipDefaultBackend 'SIP_ACCOUNT'
# sip\account and sip\auth_user are REG_EXPAND_SZ: the Registry table's "#%"
# prefix, which wixl 0.101 does not write (it ignores Type="expandable", and
# escapes the "#" of a string value as "##").
expandable() { # COMPONENT NAME PROPERTY
    msibuild "$out" -q "UPDATE \`Registry\` SET \`Value\` = '#%[$3]' WHERE \`Component_\` = '$1' AND \`Name\` = '$2'"
    local got
    got=$(msiinfo export "$out" Registry | tr -d '\r' | awk -F'\t' -v c="$1" -v n="$2" '$6 == c && $4 == n { print $5 }')
    if [ "$got" != "#%[$3]" ]; then
        echo "error: making sip\\$2 REG_EXPAND_SZ in $out failed (got: $got)" >&2
        rm -f -- "$out"
        exit 1
    fi
}
expandable CmpSipAccount account SIP_ACCOUNT
expandable CmpSipAuthUser auth_user SIP_AUTH_USER
# The properties an administrator passes, passed on to the installation's
# server side in every case (wixl 0.101 ignores Secure="yes"), beside the
# two of MajorUpgrade. msiinfo exports lines ending in CRLF.
secure=$(msiinfo export "$out" Property | tr -d '\r' | awk -F'\t' '$1 == "SecureCustomProperties" { print $2 }')
secure="${secure:+$secure;}SIP_ACCOUNT;SIP_REGISTRAR;SIP_TRANSPORT;SIP_AUTH_USER"
msibuild "$out" -q "UPDATE \`Property\` SET \`Value\` = '$secure' WHERE \`Property\` = 'SecureCustomProperties'"
got=$(msiinfo export "$out" Property | tr -d '\r' | awk -F'\t' '$1 == "SecureCustomProperties" { print $2 }')
if [ "$got" != "$secure" ]; then
    echo "error: setting SecureCustomProperties in $out failed (got: $got)" >&2
    rm -f -- "$out"
    exit 1
fi
conds=$(msiinfo export "$out" Component | awk -F'\t' '$1 ~ /^CmpDefault/ { print $1 "=" $5 }' | sort | tr '\n' ';')
if [ "$conds" != "CmpDefaultOrigins=$origins_cond;CmpDefaultPort=$port_cond;" ]; then
    echo "error: setting the component conditions in $out failed (got: $conds)" >&2
    rm -f -- "$out"
    exit 1
fi

echo "wrote $out (bapiws $msi_version, x64)"

#!/usr/bin/env bash
# The Debian package, end to end: builds it with cargo-deb, installs it with dpkg, runs
# the installed binary (--version, `serve` on a free loopback port answering /health,
# `doctor` against it, a tel: link opened with xdg-open through the package's desktop
# entry), validates the systemd user unit and the desktop entries, enables
# the unit for every user, then removes and purges the package and checks that nothing
# of it is left. Fails loudly on any problem.
# Usage: scripts/package-test.sh   (as root: it installs packages; scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
step() { printf '\n==> package: %s\n' "$*"; }
fail() { printf '\npackage test FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (it installs and removes the package with dpkg); CI runs it as root"
command -v dpkg >/dev/null || fail "dpkg is missing: the package test needs Debian or a derivative"
if dpkg-query -W -f='${Status}' bapiws 2>/dev/null | grep -q 'install ok'; then
  fail "a bapiws package is already installed on this machine; remove it first (dpkg --purge bapiws)"
fi

need() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  step "installing $2 (for $1)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || fail "$2 did not provide $1"
}
need systemd-analyze systemd
need desktop-file-validate desktop-file-utils
need xdg-mime xdg-utils

if ! cargo deb --version >/dev/null 2>&1; then
  step "installing cargo-deb $CARGO_DEB_VERSION (once; about 1.5 minutes on two cores)"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  dpkg --purge bapiws >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The dev profile: the binary scripts/test.sh has already built, so this costs seconds.
# (`cargo deb` with no profile builds the release package that is shipped.)
step "cargo deb (dev profile)"
cargo deb --profile dev --output "$work/" -- --locked
deb=$(ls "$work"/*.deb)
deb_version=$(dpkg-deb -f "$deb" Version)
version=${deb_version%-*}   # without the Debian revision (-1)
echo "built $deb (package version $deb_version)"

step "contents"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | grep -v '/$' | sort > "$work/files"
cat "$work/files"
for f in /usr/bin/bapiws /usr/lib/systemd/user/bapiws.service \
         /usr/share/bapiws/autostart/bapiws.desktop /usr/share/applications/bapiws-dial.desktop \
         /usr/share/doc/bapiws/README.md \
         /usr/share/doc/bapiws/copyright /usr/share/doc/bapiws/CHANGELOG.md \
         /usr/share/doc/bapiws/SECURITY.md /usr/share/doc/bapiws/docs/deployment.md \
         /usr/share/doc/bapiws/docs/bapiws.example.toml; do
  grep -qx "$f" "$work/files" || fail "the package lacks $f"
done
if grep -v -e '^/usr/bin/bapiws$' -e '^/usr/lib/systemd/user/bapiws.service$' \
  -e '^/usr/share/bapiws/' -e '^/usr/share/doc/bapiws/' \
  -e '^/usr/share/applications/bapiws-dial.desktop$' "$work/files"; then
  fail "the package installs files outside its own places (listed above)"
fi

step "dpkg -i"
dpkg -i "$deb"
[ -x /usr/bin/bapiws ] || fail "/usr/bin/bapiws is not installed"

step "the installed binary"
out=$(/usr/bin/bapiws --version)
[ "$out" = "bapiws $version" ] || fail "bapiws --version printed '$out', expected 'bapiws $version'"
echo "$out"
# As a user would run it: its own HOME, no BAPIWS_* variables, port 0 (a free port).
home="$work/home"
mkdir -p "$home"
env -i HOME="$home" PATH="$PATH" /usr/bin/bapiws serve --port 0 --listen 127.0.0.1 \
  >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'ws://127.0.0.1:[0-9]*' "$work/serve.out" 2>/dev/null | head -1 | sed 's/.*://') || true
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; fail "bapiws serve exited at start"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.err" >&2; fail "bapiws serve printed no address in 10 s"; }
cat "$work/serve.out"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
health=$(timeout 5 cat <&3) || fail "GET /health did not complete"
exec 3<&-
echo "$health" | tail -1
echo "$health" | head -1 | grep -q ' 200 ' || fail "/health did not answer 200"
echo "$health" | grep -q '"name":"bapiws"' || fail "/health does not name bapiws"
echo "$health" | grep -q "\"version\":\"$version\"" || fail "/health does not report version $version"
[ -d "$home/.local/state/bapiws" ] || fail "the default log folder ~/.local/state/bapiws was not created"
# The installed doctor sees the running server on that port and finds nothing wrong.
env -i HOME="$home" PATH="$PATH" /usr/bin/bapiws doctor --port "$port" --listen 127.0.0.1 \
  >"$work/doctor.out" || { cat "$work/doctor.out" >&2; fail "bapiws doctor found a problem"; }
grep -q "held by a running bapiws $version" "$work/doctor.out" \
  || { cat "$work/doctor.out" >&2; fail "bapiws doctor did not see the running server"; }
# Click-to-call with the package's desktop entry: a fresh user's `handler enable` uses
# it (no per-user copy), xdg-mime names it, and xdg-open of a tel: link has the running
# server call the number. (xdg-open hands links to handlers only in a graphical session:
# WAYLAND_DISPLAY says there is one; nothing connects to it.)
as_user() { env -i HOME="$home" PATH="$PATH" BAPIWS_PORT="$port" WAYLAND_DISPLAY=bapiws-none "$@"; }
as_user /usr/bin/bapiws handler enable >"$work/handler.out" 2>&1 \
  || { cat "$work/handler.out" >&2; fail "bapiws handler enable failed"; }
grep -q '/usr/share/applications/bapiws-dial.desktop' "$work/handler.out" \
  || { cat "$work/handler.out" >&2; fail "handler enable did not use the package's entry"; }
[ ! -e "$home/.local/share/applications/bapiws-dial.desktop" ] \
  || fail "handler enable wrote a per-user entry beside the package's"
default=$(as_user xdg-mime query default x-scheme-handler/tel)
[ "$default" = bapiws-dial.desktop ] || fail "xdg-mime names '$default' for tel: links after handler enable"
as_user xdg-open 'tel:+358-40-123 4567' || fail "xdg-open of a tel: link failed"
calls=
for _ in $(seq 1 50); do
  calls=$(as_user /usr/bin/bapiws calls --url "ws://127.0.0.1:$port" 2>&1 || true)
  case "$calls" in *+358401234567*) break ;; esac
  sleep 0.1
done
case "$calls" in *Outbound*+358401234567*) echo "xdg-open tel: -> $calls" | tail -1 ;;
  *) fail "xdg-open of tel:+358-40-123 4567 placed no call: $calls" ;; esac
as_user /usr/bin/bapiws handler disable >/dev/null || fail "bapiws handler disable failed"
kill -TERM "$server_pid"
wait "$server_pid" || fail "bapiws serve did not exit cleanly on SIGTERM (status $?)"
server_pid=

step "the systemd user unit and the autostart entry"
# systemd-analyze verify loads the unit as the user's systemd would (syntax, ExecStart
# exists and is executable, dependencies) without a running systemd; in user mode it needs
# a runtime folder, which a container's root has not. Any warning (an unknown key, say)
# fails the test too.
mkdir -m 700 "$work/runtime"
XDG_RUNTIME_DIR="$work/runtime" systemd-analyze --user verify \
  /usr/lib/systemd/user/bapiws.service >"$work/verify.out" 2>&1 \
  || { cat "$work/verify.out" >&2; fail "systemd-analyze verify rejects the unit"; }
if [ -s "$work/verify.out" ]; then
  cat "$work/verify.out" >&2
  fail "systemd-analyze verify warns about the unit"
fi
grep -qx 'ExecStart=/usr/bin/bapiws serve' /usr/lib/systemd/user/bapiws.service \
  || fail "the unit does not run /usr/bin/bapiws serve"
grep -qx 'WantedBy=default.target' /usr/lib/systemd/user/bapiws.service \
  || fail "the unit is not wanted by the user's default.target"
desktop-file-validate /usr/share/bapiws/autostart/bapiws.desktop \
  || fail "desktop-file-validate rejects the autostart entry"
desktop-file-validate /usr/share/applications/bapiws-dial.desktop \
  || fail "desktop-file-validate rejects the click-to-call entry"
# Enabled for every user, as an administrator would: the link must go with the package.
systemctl --global enable bapiws.service
[ -L /etc/systemd/user/default.target.wants/bapiws.service ] \
  || fail "systemctl --global enable made no link"

step "dpkg -r, then dpkg --purge: nothing left"
dpkg -r bapiws
if [ -e /etc/systemd/user/default.target.wants/bapiws.service ] \
  || [ -L /etc/systemd/user/default.target.wants/bapiws.service ]; then
  fail "removal left the link /etc/systemd/user/default.target.wants/bapiws.service"
fi
# With no conffiles, dpkg -r removes everything; purge whatever dpkg may still know.
if dpkg-query -W bapiws >/dev/null 2>&1; then dpkg --purge bapiws; fi
status=$(dpkg-query -W -f='${Status}' bapiws 2>/dev/null || true)
case "$status" in "" | "unknown ok not-installed") ;; *) fail "after purge dpkg still knows bapiws: $status" ;; esac
while read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then fail "removal left $f"; fi
done < "$work/files"
for d in /usr/share/doc/bapiws /usr/share/bapiws; do
  if [ -e "$d" ]; then fail "removal left $d"; fi
done
echo "package built, installed, run and removed; nothing left"

#!/usr/bin/env python3
"""The Windows build under Wine, driven from Linux by clients we did not write.

Run by scripts/windows-test.sh (which builds the .exe and prepares the Wine prefix):

    BAPIWS_EXE=path/to/bapiws.exe WINEPREFIX=... python3 tests/windows/smoke_test.py

Checks: --version; serve with a real WebSocket client from Linux (Python's websockets)
placing a call on the simulated phone and receiving its notifications; /health; the
settings from HKLM\\Software\\Benemen\\BAPIWS (Port as REG_SZ and REG_DWORD,
AllowedOrigins) and the user's HKCU\\Software\\Benemen\\BAPIWS under it and their precedence (flags > BAPIWS_* > registry > file > defaults); a
bad registry value named in the error; the log in %TEMP% (created when missing); Ctrl-C
closing clients with 1001 and flushing the log; the windowless build bapiwsw.exe (a GUI
program by its PE header, bapiws.exe a console one) serving, stopped by `bapiws stop` and
by the end of the session (wineboot --end-session: WM_ENDSESSION) with clients told 1001 and the log
written; `autostart enable|status|disable` read back from the registry (the Run value
starts bapiwsw.exe); Init ["baresip"] answered with the unknown-backend error.
Every failure exits non-zero; nothing is skipped.
"""

import asyncio
import datetime
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets  # Debian's python3-websockets

EXE = os.environ.get("BAPIWS_EXE", "")
PREFIX = os.environ.get("WINEPREFIX", "")
WINE = shutil.which("wine") or "/usr/bin/wine"
KEY = r"HKLM\Software\Benemen\BAPIWS"
USER_KEY = r"HKCU\Software\Benemen\BAPIWS"
RUN = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run"
WAIT = 30  # seconds: the longest any one step may take (Wine is slow to start)

failures = []


def step(text):
    print(f"==> {text}", flush=True)


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def wine_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAPIWS_")}
    env["WINEDEBUG"] = "-all"
    env.update(extra or {})
    return env


def wine(*args, env=None, check_rc=True):
    p = subprocess.run(
        [WINE, *args], env=wine_env(env), capture_output=True, text=True, timeout=WAIT
    )
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"wine {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def reg(*args, check_rc=True):
    return wine("reg", *args, check_rc=check_rc)


def clear_registry():
    reg("delete", KEY, "/f", check_rc=False)
    reg("delete", USER_KEY, "/f", check_rc=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unix_path(windows_path):
    """C:\\x\\y in the prefix as a Linux path."""
    drive, _, rest = windows_path.partition(":")
    if drive.upper() != "C" or not rest.startswith("\\"):
        raise RuntimeError(f"not a path on C: {windows_path!r}")
    return os.path.join(PREFIX, "drive_c", *[p for p in rest.split("\\") if p])


class Server:
    """`wine bapiws.exe serve ...` with its banner read from stdout."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen(
            [WINE, EXE, "serve", "--listen", "127.0.0.1", *args],
            env=wine_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.banner = self.proc.stdout.readline()
        if "ws://" not in self.banner:
            self.stop()
            raise RuntimeError(f"no banner; stderr: {self.stderr}")
        self.url = next(w for w in self.banner.split() if w.startswith("ws://")).rstrip(";,")
        self.port = int(self.url.rsplit(":", 1)[1])

    def interrupt(self):
        """Ctrl-C (SIGINT reaches a Wine program as CTRL_C_EVENT); the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=WAIT)
        finally:
            self.stderr = self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self.stderr = self.proc.stderr.read() if self.proc.stderr else ""


def pe_subsystem(path):
    """The Subsystem field of a PE file's optional header: 2 a GUI program (no console
    window), 3 a console program."""
    with open(path, "rb") as f:
        head = f.read(4096)
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    if head[pe : pe + 4] != b"PE\0\0":
        raise RuntimeError(f"{path}: not a PE file")
    # The optional header follows the 4-byte signature and the 20-byte COFF header; its
    # Subsystem field is at offset 68 in PE32 and PE32+ alike.
    return struct.unpack_from("<H", head, pe + 24 + 68)[0]


class Windowless:
    """`wine bapiwsw.exe serve ...`: no console, so no banner to read; ready when /health
    answers on the port it was given."""

    def __init__(self, exe, port, *args):
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [WINE, exe, "serve", "--listen", "127.0.0.1", "--port", str(port), *args],
            env=wine_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if http_get(port, "/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"bapiwsw.exe did not answer /health on {port}")
            time.sleep(0.2)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)


async def stopped_from_outside(server, *command):
    """Connects a client to `server`, runs `command` (which should stop it); returns the
    close code the client got, the command's result and the server's exit code."""
    async with websockets.connect(server.url, open_timeout=WAIT) as ws:
        await rpc(ws, 1, "GetState", [])
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, lambda: wine(*command, check_rc=False))
        close = None
        try:
            while True:
                await asyncio.wait_for(ws.recv(), WAIT)
        except websockets.exceptions.ConnectionClosed as e:
            close = e.code
        except asyncio.TimeoutError:
            close = None
        result = await done
        try:
            code = server.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            code = None
        return close, result, code


def start_fails(*args, env=None):
    """Runs serve expecting it to refuse to start; returns (exit code, stderr)."""
    p = subprocess.run(
        [WINE, EXE, "serve", "--listen", "127.0.0.1", *args],
        env=wine_env(env),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    return p.returncode, p.stderr


def http_get(port, path, origin=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if origin:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def rpc(ws, id_, method, params):
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}))
    seen = []
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if msg.get("id") == id_:
            return msg, seen
        seen.append(msg)


async def until(ws, method, seen):
    for m in seen:
        if m.get("method") == method:
            return m
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        seen.append(m)
        if m.get("method") == method:
            return m


async def origin_allowed(url, origin):
    try:
        async with websockets.connect(url, origin=origin, open_timeout=WAIT):
            return True
    except websockets.exceptions.InvalidStatusCode as e:
        if e.status_code == 403:
            return False
        raise


async def call_on_the_simulated_phone(server):
    async with websockets.connect(server.url, open_timeout=WAIT) as ws:
        reply, seen = await rpc(ws, 1, "GetState", [])
        check(reply.get("result") == "Available", f"GetState: {reply}")
        reply, seen = await rpc(ws, 2, "CallOut", ["+358 40 123 4567"])
        check(reply.get("result") == 0, f"CallOut: {reply}")
        out = await until(ws, "CallingOut", seen)
        call_id = out["params"][0]
        check(out["params"][1] == "+358401234567", f"CallingOut: {out}")
        connected = await until(ws, "CallConnected", seen)
        check(connected["params"] == [call_id], f"CallConnected: {connected}")
        reply, seen = await rpc(ws, 3, "GetActiveCalls", [])
        check(call_id in reply.get("result", []) and "Connected" in reply.get("result", []), f"GetActiveCalls: {reply}")
        reply, seen = await rpc(ws, 4, "HangUp", [])
        check(reply.get("result") == 0, f"HangUp: {reply}")
        gone = await until(ws, "CallDisconnected", seen)
        check(gone["params"][0] == call_id, f"CallDisconnected: {gone}")
        reply, _ = await rpc(ws, 5, "Init", ["baresip"])
        err = reply.get("error", {})
        check(
            err.get("code") == -32003 and "sim" in err.get("data", []) and "baresip" not in err.get("data", []),
            f"Init baresip on Windows: {reply}",
        )


async def interrupted_with_a_client(server):
    async with websockets.connect(server.url, open_timeout=WAIT) as ws:
        await rpc(ws, 1, "GetState", [])
        loop = asyncio.get_running_loop()
        code_future = loop.run_in_executor(None, server.interrupt)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), WAIT)
        except websockets.exceptions.ConnectionClosed as e:
            close = e.code
        exit_code = await code_future
        return close, exit_code


def main():
    if not EXE or not os.path.isfile(EXE):
        sys.exit(f"BAPIWS_EXE={EXE!r} is not a file (scripts/windows-test.sh sets it)")
    if not PREFIX or not os.path.isdir(PREFIX):
        sys.exit(f"WINEPREFIX={PREFIX!r} is not a folder (scripts/windows-test.sh sets it)")
    clear_registry()
    temp = unix_path(wine("cmd", "/c", "echo %TEMP%").stdout.strip())
    today = datetime.date.today().strftime("%Y%m%d")
    log = os.path.join(temp, f"BAPIWS_{today}.log")

    step("--version")
    p = wine(EXE, "--version")
    check(p.stdout.startswith("bapiws "), f"--version printed {p.stdout!r}")

    step("serve on the default port from no settings, with the log in %TEMP% (created when missing)")
    shutil.rmtree(temp, ignore_errors=True)
    server = Server()
    try:
        check(server.port == 9898, f"default port: {server.banner}")
        check("BAPIWS_" in server.banner and "Temp" in server.banner, f"log in %TEMP%: {server.banner}")
        status, body = http_get(server.port, "/health")
        check(status == 200 and "version" in json.loads(body), f"/health: {status} {body}")
        asyncio.run(call_on_the_simulated_phone(server))
    except BaseException:
        server.stop()
        raise
    step("Ctrl-C with a client connected: close 1001, exit 0, the log written")
    close_code, exit_code = asyncio.run(interrupted_with_a_client(server))
    check(close_code == 1001, f"close code on Ctrl-C: {close_code}")
    check(exit_code == 0, f"exit code on Ctrl-C: {exit_code}; stderr: {server.stderr}")
    check(os.path.isfile(log), f"log file {log} exists")
    text = open(log, encoding="utf-8", errors="replace").read() if os.path.isfile(log) else ""
    check("shutting down" in text and "stopped" in text, "log has the shutdown lines")
    check(
        "cannot create the hidden window" not in text + server.stderr,
        "the hidden window that hears logoff and shutdown was created",
    )

    step("registry: Port (REG_SZ) and AllowedOrigins, as the original reads them")
    p_reg, p_env, p_flag, p_file = free_port(), free_port(), free_port(), free_port()
    reg("add", KEY, "/v", "Port", "/t", "REG_SZ", "/d", str(p_reg), "/f")
    reg("add", KEY, "/v", "AllowedOrigins", "/t", "REG_SZ", "/d", "https://crm.example.com", "/f")
    server = Server()
    try:
        check(server.port == p_reg, f"port from the registry {p_reg}: {server.banner}")
        check("registry HKLM" in server.banner, f"banner names the registry: {server.banner}")
        check(asyncio.run(origin_allowed(server.url, "https://crm.example.com")), "registry origin allowed")
        check(not asyncio.run(origin_allowed(server.url, "https://evil.example")), "other origin refused")
    finally:
        server.stop()

    step("registry: Port as REG_DWORD")
    reg("add", KEY, "/v", "Port", "/t", "REG_DWORD", "/d", str(p_reg), "/f")
    server = Server()
    try:
        check(server.port == p_reg, f"REG_DWORD port {p_reg}: {server.banner}")
    finally:
        server.stop()

    step("doctor names the registry key, and a value it does not know as a warning")
    reg("add", KEY, "/v", "VoiceForWindowsPath", "/t", "REG_SZ", "/d", "C:\\vfw", "/f")
    p = wine(EXE, "doctor", "--port", str(free_port()), check_rc=False)
    check(r"registry HKLM\Software\Benemen\BAPIWS read" in p.stdout, f"doctor: {p.stdout}")
    check('value "VoiceForWindowsPath" is not a setting of bapiws' in p.stdout, f"doctor: {p.stdout}")
    reg("delete", KEY, "/v", "VoiceForWindowsPath", "/f")

    step("doctor on the built-in phone's settings from the registry: account, firewall, the password never shown")
    reg("add", KEY, "/v", "DefaultBackend", "/t", "REG_SZ", "/d", "sip", "/f")
    reg("add", KEY + r"\sip", "/v", "Account", "/t", "REG_EXPAND_SZ", "/d", "sip:%USERNAME%@127.0.0.1", "/f")
    reg("add", KEY + r"\sip", "/v", "RtpPorts", "/t", "REG_SZ", "/d", "20000-20099", "/f")
    p = wine(EXE, "doctor", "--port", str(free_port()), "--sip-register", "false", check_rc=False,
             env={"BAPIWS_SIP_PASSWORD": "doctor-must-not-show-this"})
    user = wine("cmd", "/c", "echo %USERNAME%").stdout.strip()
    check(f"account sip:{user}@127.0.0.1" in p.stdout, f"doctor's account (REG_EXPAND_SZ expanded): {p.stdout}")
    check("a password is given (not shown)" in p.stdout, f"doctor's password line: {p.stdout}")
    check("doctor-must-not-show-this" not in p.stdout + p.stderr, "doctor never shows the password")
    check("Windows Firewall" in p.stdout and "20000-20099" in p.stdout and "netsh advfirewall" in p.stdout,
          f"doctor's firewall hint: {p.stdout}")
    reg("delete", KEY, "/v", "DefaultBackend", "/f")
    reg("delete", KEY + r"\sip", "/f")

    step("precedence: flags > BAPIWS_* > registry > file > defaults")
    appdata = unix_path(wine("cmd", "/c", "echo %APPDATA%").stdout.strip())
    config_dir = os.path.join(appdata, "bapiws", "config")
    os.makedirs(config_dir, exist_ok=True)
    config = os.path.join(config_dir, "config.toml")
    with open(config, "w") as f:
        f.write(f'port = {p_file}\nallowed_origins = ["https://file.example"]\nmax_batch = 7\n')
    try:
        reg("delete", KEY, "/v", "AllowedOrigins", "/f")
        server = Server()
        try:
            check(server.port == p_reg, f"registry over file: {server.banner}")
            check(asyncio.run(origin_allowed(server.url, "https://file.example")), "file used where the registry is silent")
        finally:
            server.stop()
        server = Server(env={"BAPIWS_PORT": str(p_env)})
        try:
            check(server.port == p_env, f"BAPIWS_PORT over registry: {server.banner}")
        finally:
            server.stop()
        server = Server("--port", str(p_flag), env={"BAPIWS_PORT": str(p_env)})
        try:
            check(server.port == p_flag, f"--port over BAPIWS_PORT: {server.banner}")
        finally:
            server.stop()
    finally:
        os.remove(config)

    step("registry: the user's own key (HKCU) where the administrator's (HKLM) is silent")
    clear_registry()
    p_user, p_machine = free_port(), free_port()
    reg("add", USER_KEY, "/v", "Port", "/t", "REG_SZ", "/d", str(p_user), "/f")
    reg("add", USER_KEY + r"\sim", "/v", "AnswerDelayMs", "/t", "REG_DWORD", "/d", "1234", "/f")
    server = Server()
    try:
        check(server.port == p_user, f"HKCU's Port used: {server.banner}")
        check(USER_KEY in server.banner, f"the banner names HKCU's key: {server.banner}")
    finally:
        server.stop()
    reg("add", KEY, "/v", "Port", "/t", "REG_SZ", "/d", str(p_machine), "/f")
    server = Server()
    try:
        check(server.port == p_machine, f"HKLM's Port wins over HKCU's: {server.banner}")
        check(KEY in server.banner and USER_KEY in server.banner, f"the banner names both keys: {server.banner}")
    finally:
        server.stop()
    reg("add", USER_KEY, "/v", "Port", "/t", "REG_SZ", "/d", "eleven", "/f")
    reg("delete", KEY, "/v", "Port", "/f")
    code, err = start_fails()
    check(code == 2 and USER_KEY in err and "value Port" in err and "eleven" in err, f"a bad HKCU value: {code} {err!r}")
    clear_registry()

    step("a bad registry value names the key and the value")
    reg("add", KEY, "/v", "Port", "/t", "REG_SZ", "/d", "ninety", "/f")
    code, err = start_fails()
    check(code == 2, f"exit code for a bad registry value: {code}")
    check(r"HKLM\Software\Benemen\BAPIWS" in err and "value Port" in err and "ninety" in err, f"error: {err!r}")
    clear_registry()

    step("the windowless bapiwsw.exe: a GUI program; stopped by `bapiws stop` and by the session's end")
    wexe = os.path.join(os.path.dirname(EXE), "bapiwsw.exe")
    if check(os.path.isfile(wexe), f"{wexe} was built beside bapiws.exe"):
        check(pe_subsystem(wexe) == 2, f"bapiwsw.exe's PE subsystem: {pe_subsystem(wexe)} (2 = GUI)")
        check(pe_subsystem(EXE) == 3, f"bapiws.exe's PE subsystem: {pe_subsystem(EXE)} (3 = console)")
        p = wine(EXE, "stop", check_rc=False)
        check(p.returncode == 1 and "no bapiws server" in p.stderr, f"stop with none running: {p.returncode} {p.stderr!r}")
        for how, command in [
            ("bapiws stop", (EXE, "stop")),
            ("system shutdown", ("wineboot", "--end-session")),
        ]:
            with open(log, "a"):
                pass
            before = os.path.getsize(log)
            port = free_port()
            server = Windowless(wexe, port)
            try:
                close, result, code = asyncio.run(stopped_from_outside(server, *command))
            finally:
                server.kill()
            check(close == 1001, f"{how}: the client's close code: {close}")
            check(result.returncode == 0, f"{how}: {' '.join(command)} exited {result.returncode}: {result.stdout!r} {result.stderr!r}")
            if how == "bapiws stop":
                check("stopped 1 bapiws server" in result.stdout, f"bapiws stop said {result.stdout!r}")
            check(code == 0, f"{how}: bapiwsw.exe's exit code: {code}")
            with open(log, encoding="utf-8", errors="replace") as f:
                f.seek(before)
                written = f.read()
            check(f'shutting down signal="{how}"' in written or f"shutting down signal={how}" in written,
                  f"{how}: the log says why it stopped: {written[-600:]!r}")

    step("autostart enable / status / disable, read back from the registry")
    wine(EXE, "autostart", "disable")
    p = reg("query", RUN, "/v", "bapiws", check_rc=False)
    check(p.returncode != 0, f"no Run value before enable: {p.stdout}")
    p = wine(EXE, "autostart", "enable")
    check("enabled" in p.stdout, f"enable said {p.stdout!r}")
    p = reg("query", RUN, "/v", "bapiws", check_rc=False)
    # The windowless build beside bapiws.exe is what starts at login.
    exe_name = "bapiwsw.exe"
    check(p.returncode == 0 and f'{exe_name}" serve' in p.stdout and "REG_SZ" in p.stdout, f"Run value: {p.stdout!r}")
    p = wine(EXE, "autostart", "status")
    check(p.stdout.startswith("enabled:"), f"status said {p.stdout!r}")
    p = wine(EXE, "autostart", "disable")
    check("disabled" in p.stdout, f"disable said {p.stdout!r}")
    p = reg("query", RUN, "/v", "bapiws", check_rc=False)
    check(p.returncode != 0, f"Run value gone after disable: {p.stdout!r}")
    p = wine(EXE, "autostart", "status")
    check(p.stdout.startswith("disabled"), f"status after disable: {p.stdout!r}")

    if failures:
        print(f"\n{len(failures)} check(s) failed:", *failures, sep="\n  ")
        sys.exit(1)
    print("windows smoke test: every check passed")


if __name__ == "__main__":
    main()

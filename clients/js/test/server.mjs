// Test support: the real bapiws binary on a free port.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const BIN = process.env.BAPIWS_BIN || resolve(import.meta.dirname, "../../../target/debug/bapiws");

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Starts `bapiws serve` with a private log folder; resolves once it listens. */
export async function startServer(args = [], port = 0) {
  const dir = mkdtempSync(join(tmpdir(), "bapiws-js-"));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("BAPIWS_")));
  env.XDG_CONFIG_HOME = dir;
  const child = spawn(
    BIN,
    ["serve", "--port", String(port), "--listen", "127.0.0.1", "--log-dir", dir,
      "--sim-answer-delay-ms", "200", ...args],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stderr.resume();
  const line = await new Promise((ok, fail) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", ok);
    child.once("exit", (code) => fail(new Error(`bapiws exited with ${code} before listening`)));
    child.once("error", fail);
  });
  const url = line.split(/\s+/).find((w) => w.startsWith("ws://")).replace(/[;,]$/, "");
  return {
    url,
    port: Number(url.split(":").pop()),
    child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the next event of `name` from the client. */
export function next(client, name, ms = 5000) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => { off(); fail(new Error(`no ${name} within ${ms} ms`)); }, ms);
    const off = client.on(name, (e) => { clearTimeout(timer); off(); ok(e); });
  });
}

/**
 * A raw JSON-RPC connection, for driving the server beside the client under test; with
 * the global WebSocket, or another implementation such as `ws`'s.
 */
export async function raw(url, WebSocketImpl = globalThis.WebSocket) {
  const ws = new WebSocketImpl(url);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  let id = 0;
  const waiting = new Map();
  ws.onmessage = (ev) => {
    const m = JSON.parse(String(ev.data));
    if (m.id !== undefined && waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); }
  };
  return {
    call(method, params = []) {
      id += 1;
      const myId = id;
      ws.send(JSON.stringify({ jsonrpc: "2.0", id: myId, method, params }));
      return new Promise((ok) => waiting.set(myId, ok));
    },
    close() { ws.close(); },
  };
}

/** Records every `name` event from now on; `until(pred)` waits for a matching one. */
export function collect(client, name) {
  const seen = [];
  const waiters = [];
  client.on(name, (e) => {
    seen.push(e);
    for (const w of waiters.splice(0)) w();
  });
  return {
    seen,
    async until(pred, ms = 5000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = seen.findIndex(pred);
        if (i >= 0) return seen.splice(0, i + 1)[i];
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching ${name} within ${ms} ms; saw ${JSON.stringify(seen)}`);
        await new Promise((ok) => { waiters.push(ok); setTimeout(ok, left); });
      }
    },
  };
}

/** Sends SIGSTOP to the server and waits until the kernel has really stopped it. */
export async function pause(server) {
  server.child.kill("SIGSTOP");
  for (let i = 0; i < 200; i++) {
    const stat = readFileSync(`/proc/${server.child.pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
    await new Promise((ok) => setTimeout(ok, 10));
  }
  throw new Error("the server did not stop");
}

/** Lets a paused server run again. */
export function resume(server) {
  server.child.kill("SIGCONT");
}

/**
 * A TCP server on 127.0.0.1 that accepts connections and never answers: a WebSocket
 * handshake to it hangs. `connections` counts the accepted ones.
 */
export async function blackHole() {
  const sockets = new Set();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    hole.connections += 1;
    for (const w of hole.waiters.splice(0)) w();
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const hole = {
    url: `ws://127.0.0.1:${server.address().port}`,
    connections: 0,
    waiters: [],
    /** Resolves once at least `n` connections were accepted. */
    async accepted(n = 1) {
      while (hole.connections < n) await new Promise((ok) => hole.waiters.push(ok));
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((ok) => server.close(ok));
    },
  };
  return hole;
}

// The recipes of docs/integrating.md (rpc-websockets, json-rpc-2.0, Python websockets) and
// the Node example of this package's README, run as they stand in the Markdown against a
// real server: the code blocks marked `<!-- test: NAME -->` are taken from the files, the
// server's URL put in place of ws://127.0.0.1:9898, and what they print is checked.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { WebSocket } from "ws";
import { testedBlocks } from "./markdown.mjs";
import { startServer, raw } from "./server.mjs";

const PKG = resolve(import.meta.dirname, "..");
const DOC = resolve(PKG, "../../docs/integrating.md");
const README = resolve(PKG, "README.md");
// Debian's python3-websockets is installed for the system's Python.
const PYTHON = process.env.PYTHON || "/usr/bin/python3";
const DEFAULT_URL = "ws://127.0.0.1:9898";

const recipes = testedBlocks(DOC, ["rpc-websockets", "json-rpc-2.0", "python-websockets"]);
const readme = testedBlocks(README, ["readme-node"]);

/** The code with the server's URL in place of the default one. */
function pointedAt(code, url) {
  assert.ok(code.includes(DEFAULT_URL), `the recipe connects to ${DEFAULT_URL}`);
  return code.replaceAll(DEFAULT_URL, url);
}

/** Runs a program (from this package's folder, so that its imports resolve) and reads its output. */
function run(command, args) {
  const child = spawn(command, args, { cwd: PKG, stdio: ["ignore", "pipe", "pipe"] });
  const lines = [];
  let stderr = "";
  let wake = () => {};
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    wake();
  });
  child.stderr.on("data", (d) => { stderr += d; });
  const exited = new Promise((ok) => child.once("exit", (code, signal) => { wake(); ok({ code, signal }); }));
  return {
    lines,
    exited,
    /** Resolves with the first line matching `pattern`; fails after `ms` or when the program ends. */
    async line(pattern, ms = 10000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = lines.find((l) => pattern.test(l));
        if (found) return found;
        const why = child.exitCode !== null ? `the program exited with ${child.exitCode}` : Date.now() > deadline ? `not within ${ms} ms` : null;
        if (why) assert.fail(`no line matching ${pattern}: ${why}\nstdout:\n${lines.join("\n")}\nstderr:\n${stderr}`);
        await new Promise((ok) => { wake = ok; setTimeout(ok, 100); });
      }
    },
    get stderr() { return stderr; },
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * The scenario every phone recipe goes through: it Inits, reads the state and calls out
 * (printing the notifications that follow); then an incoming call reaches it.
 */
async function phoneRecipe(command, argsFor) {
  const server = await startServer();
  const program = run(command, argsFor(server.url));
  try {
    await program.line(/^GetState Available$/);
    const callingOut = await program.line(/^CallingOut \S+ \+358401234567$/);
    const callId = callingOut.split(" ")[1];
    await program.line(/^StateChanged Busy$/);
    await program.line(new RegExp(`^CallConnected ${callId}$`));
    const other = await raw(server.url, WebSocket);
    try {
      const reply = await other.call("Sim.IncomingCall", ["0505010269"]);
      assert.equal(typeof reply.result, "string", JSON.stringify(reply));
      await program.line(new RegExp(`^CallComing ${reply.result} 0505010269$`));
      await other.call("Sim.RemoteHangUp", [callId, "busy"]);
      await program.line(new RegExp(`^CallDisconnected ${callId} busy$`));
    } finally {
      other.close();
    }
    assert.equal(program.lines.filter((l) => l.startsWith("GetState")).length, 1, program.lines.join("\n"));
  } finally {
    await program.stop();
    await server.stop();
  }
}

test("docs/integrating.md: rpc-websockets", { timeout: 60000 }, async () => {
  const code = recipes.get("rpc-websockets");
  assert.doesNotMatch(code, /subscribe\(/, "subscribe() sends the reserved rpc.on");
  await phoneRecipe(process.execPath, (url) => ["--input-type=module", "-e", pointedAt(code, url)]);
});

test("docs/integrating.md: json-rpc-2.0 (the browser's WebSocket: Node's, with --experimental-websocket)", { timeout: 60000 }, async () => {
  const code = recipes.get("json-rpc-2.0");
  await phoneRecipe(process.execPath, (url) => ["--experimental-websocket", "--no-warnings", "--input-type=module", "-e", pointedAt(code, url)]);
});

test("docs/integrating.md: Python websockets", { timeout: 60000 }, async () => {
  const check = spawnSync(PYTHON, ["-c", "import websockets; print(websockets.__version__)"], { encoding: "utf8" });
  assert.equal(
    check.status, 0,
    `${PYTHON} cannot import websockets: install Debian's python3-websockets (scripts/test.sh does, as root)\n${check.error ?? check.stderr}`,
  );
  const code = recipes.get("python-websockets");
  await phoneRecipe(PYTHON, (url) => ["-c", pointedAt(code, url)]);
});

test("README.md: the Node example with ws's WebSocket class", { timeout: 60000 }, async () => {
  const server = await startServer();
  try {
    const program = run(process.execPath, ["--input-type=module", "-e", pointedAt(readme.get("readme-node"), server.url)]);
    const { code } = await program.exited;
    assert.equal(code, 0, program.stderr);
    assert.deepEqual(program.lines, ["the phone is Available"]);
  } finally {
    await server.stop();
  }
});

// The package as a user installs it: `npm pack` here, `npm install <tarball>` (offline: it
// has no runtime dependencies) into an empty project elsewhere, then imported by its name
// from Node and compiled against by TypeScript. Run without --experimental-websocket, so
// Node 20 has no global WebSocket, as a user's Node 20 has none.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startServer } from "./server.mjs";

const pkg = resolve(import.meta.dirname, "..");
const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
let dir;
let packed;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "bapiws-pack-"));
  const out = execFileSync(npm, ["pack", "--json", "--pack-destination", dir], { cwd: pkg, encoding: "utf8" });
  [packed] = JSON.parse(out);
  const app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true, type: "module" }));
  execFileSync(npm, ["install", "--no-audit", "--no-fund", "--offline", join(dir, packed.filename)], {
    cwd: app, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
  });
});
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

test("npm pack: the build, its types, the README and package.json, nothing else", () => {
  assert.equal(packed.name, "bapiws-client");
  assert.equal(packed.version, manifest.version);
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, ["README.md", "dist/index.d.ts", "dist/index.js", "package.json"]);
  // What package.json points at is in the tarball.
  assert.equal(manifest.exports["."].import, "./dist/index.js");
  assert.equal(manifest.exports["."].types, "./dist/index.d.ts");
  assert.equal(manifest.types, "./dist/index.d.ts");
  assert.deepEqual(manifest.dependencies ?? {}, {});
});

test("installed from the tarball: import \"bapiws-client\" from Node; the error names ws", () => {
  const script = `
    import { BapiwsClient, ConnectionError, RpcError } from "bapiws-client";
    if (typeof BapiwsClient !== "function" || typeof ConnectionError !== "function" || typeof RpcError !== "function") {
      throw new Error("missing exports");
    }
    try { new BapiwsClient(); console.log("constructed"); } catch (e) { console.log(e.message); }
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: join(dir, "app"), encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^no WebSocket implementation/);
  assert.ok(run.stdout.includes('import WebSocket from "ws"'), run.stdout);
  assert.ok(run.stdout.includes("new BapiwsClient({ WebSocket })"), run.stdout);
});

test("installed from the tarball: connects to the server with ws", { timeout: 30000 }, async () => {
  const server = await startServer();
  try {
    const ws = pathToFileURL(join(pkg, "node_modules/ws/wrapper.mjs")).href;
    const script = `
      import WebSocket from ${JSON.stringify(ws)};
      import { BapiwsClient } from "bapiws-client";
      const phone = new BapiwsClient({ url: ${JSON.stringify(server.url)}, backend: "sim", WebSocket });
      await phone.connect();
      console.log(await phone.getState());
      phone.close();
    `;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: join(dir, "app"), encoding: "utf8", timeout: 20000 });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), "Available");
  } finally {
    await server.stop();
  }
});

test("installed from the tarball: TypeScript finds the types through exports", () => {
  const app = join(dir, "app");
  writeFileSync(join(app, "main.ts"), `
import { BapiwsClient, type ActiveCall } from "bapiws-client";
const phone = new BapiwsClient({ url: "ws://127.0.0.1:9898" });
const calls: Promise<ActiveCall[]> = phone.getActiveCalls();
void calls;
`);
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: "node16", moduleResolution: "node16", target: "ES2022", lib: ["ES2022", "DOM"], types: [] },
    files: ["main.ts"],
  }));
  const tsc = join(pkg, "node_modules/typescript/bin/tsc");
  const run = spawnSync(process.execPath, [tsc, "-p", app], { cwd: app, encoding: "utf8" });
  assert.equal(run.status, 0, run.stdout + run.stderr);
});

// Real headless Chromium against the real server, from pages the browser treats as public
// web sites (Local Network Access applies to them): what this package's client reports for
// each reason a page cannot reach bapiws. The sites are crm.test and widget.test, mapped to
// 127.0.0.1 by --host-resolver-rules and marked public by --ip-address-space-overrides (so
// every packet stays on loopback); their https:// servers use a certificate made for this
// run (openssl), accepted with --ignore-certificate-errors. Headless Chromium shows no
// permission prompt: it refuses it, as a user's Block would. A granted permission comes
// from the DevTools protocol (Playwright's grantPermissions), or from an enterprise policy:
// Chromium reads /etc/chromium/policies/managed/, so those tests start it in a mount
// namespace of its own (util-linux's unshare) where a folder of the test is bound over
// /etc/chromium; the machine's own /etc/chromium is not touched.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import ts from "typescript";
import { testedBlocks } from "./markdown.mjs";
import { startServer, freePort } from "./server.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const dist = readFileSync(resolve(import.meta.dirname, "../dist/index.js"), "utf8");
let browser;
let server; // allows crm.test and widget.test
let dir;
const sites = {};
/** The README's example (readme-causes) as the page's module, for the server `exampleUrl`. */
const readmeExample = testedBlocks(resolve(import.meta.dirname, "../README.md"), ["readme-causes"]).get("readme-causes");
let exampleUrl = "";

/** A web site on 127.0.0.1: `/` an empty page, `/client.js` this package, `/frame` a page with an iframe. */
async function site(scheme, tls) {
  const handler = (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/client.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(dist);
    } else if (url.pathname === "/example.js") {
      const js = ts.transpileModule(readmeExample, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } }).outputText;
      res.writeHead(200, { "content-type": "text/javascript" })
        .end(js.replace('"bapiws-client"', '"/client.js"').replace('"ws://127.0.0.1:9898"', JSON.stringify(exampleUrl)));
    } else if (url.pathname === "/example") {
      res.writeHead(200, { "content-type": "text/html" })
        .end('<!doctype html><title>crm</title><p id="phone-status"></p><button id="phone-allow" hidden>Allow</button><script type="module" src="/example.js"></script>');
    } else if (url.pathname === "/frame") {
      const allow = url.searchParams.get("allow");
      const src = url.searchParams.get("src") ?? "";
      res.writeHead(200, { "content-type": "text/html" })
        .end(`<!doctype html><title>embedding</title><iframe src="${src.replace(/"/g, "")}"${allow ? ` allow="${allow.replace(/"/g, "")}"` : ""}></iframe>`);
    } else {
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>crm</title><p>A web application");
    }
  };
  const s = scheme === "https" ? createHttpsServer(tls, handler) : createServer(handler);
  const port = await freePort();
  await new Promise((ok) => s.listen(port, "127.0.0.1", ok));
  return { server: s, port };
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is not installed at ${CHROMIUM} (apt-get install chromium)`);
  dir = mkdtempSync(join(tmpdir(), "bapiws-lna-"));
  // A certificate for this run only.
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=crm.test",
    "-addext", "subjectAltName=DNS:crm.test,DNS:widget.test", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
  { stdio: "ignore" });
  const tls = { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  sites.https = await site("https", tls);
  sites.http = await site("http");
  sites.widget = await site("https", tls);
  server = await startServer(["--allowed-origins", "crm.test,widget.test"]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: chromiumArgs() });
});
after(async () => {
  await browser?.close();
  for (const s of Object.values(sites)) s.server.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const chromiumArgs = () => {
  const publicPorts = [sites.https, sites.http, sites.widget].map((s) => `127.0.0.1:${s.port}=public`).join(",");
  return ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP crm.test 127.0.0.1, MAP widget.test 127.0.0.1",
    `--ip-address-space-overrides=${publicPorts}`, "--ignore-certificate-errors"];
};

/** A Chromium whose managed enterprise policy is `policy`, in a mount namespace of its own. */
async function policyBrowser(name, policy) {
  const root = join(dir, name);
  mkdirSync(join(root, "etc-chromium/policies/managed"), { recursive: true });
  writeFileSync(join(root, "etc-chromium/policies/managed/bapiws.json"), JSON.stringify(policy));
  const wrapper = join(root, "chromium");
  writeFileSync(wrapper, `#!/bin/sh
exec unshare --mount --map-root-user sh -c 'mount --bind "$0" /etc/chromium && exec "${CHROMIUM}" "$@"' "${join(root, "etc-chromium")}" "$@"
`);
  chmodSync(wrapper, 0o755);
  return chromium.launch({ executablePath: wrapper, args: chromiumArgs() });
}

const origin = (name) => `${name === "http" ? "http" : "https"}://${name === "widget" ? "widget" : "crm"}.test:${sites[name].port}`;

/** A fresh browser context (its own permissions) with a page of the site `name`. */
async function open(name, { grant = false, on = browser } = {}) {
  const context = await on.newContext();
  if (grant) await context.grantPermissions(["local-network-access"], { origin: origin(name) });
  const p = await context.newPage();
  await p.goto(`${origin(name)}/`);
  return p;
}

/**
 * In the page or frame `where`: a client for `url` (options as JSON), its connection events
 * (`window.seen`) and how many sockets it made (`window.sockets`); connect() started.
 */
async function startClient(where, url, options = {}) {
  await where.evaluate(async ({ url, options }) => {
    const { BapiwsClient } = await import("/client.js");
    window.sockets = 0;
    class Counting extends WebSocket {
      constructor(u) {
        super(u);
        window.sockets += 1;
      }
    }
    window.seen = [];
    window.client = new BapiwsClient({ url, keepAliveMs: 0, WebSocket: Counting, ...options });
    window.client.on("connection", (e) => window.seen.push(e));
    window.connected = window.client.connect().then(() => "open", (e) => ({ name: e.name, cause: e.cause, message: e.message }));
  }, { url, options });
}
const seen = (where) => where.evaluate(() => window.seen.map((e) => ({ ...e })));
const waitForCause = (where, cause) =>
  where.waitForFunction((c) => window.seen.some((e) => e.cause === c), cause, { timeout: 10000 });
const permission = (where) => where.evaluate(async () => (await navigator.permissions.query({ name: "loopback-network" })).state);

test("a public http:// page: the browser refuses without asking; the client says permission-denied and does not retry", { timeout: 30000 }, async () => {
  const p = await open("http");
  try {
    assert.equal(await p.evaluate(() => window.isSecureContext), false);
    await startClient(p, server.url, { minBackoffMs: 20, maxBackoffMs: 40 });
    await waitForCause(p, "permission-denied");
    await p.waitForTimeout(1500); // dozens of backoff delays
    const events = await seen(p);
    assert.deepEqual(events.map((e) => [e.state, e.attempt, e.cause]),
      [["connecting", 0, undefined], ["reconnecting", 1, "permission-denied"]]);
    assert.match(events[1].error, /^connection to ws:\/\/127\.0\.0\.1:\d+ failed: the browser does not let this site reach the computer/);
    assert.equal(await p.evaluate(() => window.sockets), 1, "the client retried");
    assert.equal(await permission(p), "denied");
    // A click cannot help: requestAccess() rejects at once, with the cause.
    const clicked = await p.evaluate(() => window.client.requestAccess().then(() => "open", (e) => [e.name, e.cause]));
    assert.deepEqual(clicked, ["ConnectionError", "permission-denied"]);
    assert.equal(await p.evaluate(() => window.sockets), 1);
  } finally {
    await p.context().close();
  }
});

test("a public https:// page without the permission: the prompt is refused (permission-denied, no retry); once granted, the client resumes by itself and gets its reply", { timeout: 30000 }, async () => {
  const p = await open("https");
  try {
    assert.equal(await permission(p), "prompt");
    await startClient(p, server.url, { minBackoffMs: 20, maxBackoffMs: 40 });
    await waitForCause(p, "permission-denied");
    await p.waitForTimeout(500);
    assert.equal(await p.evaluate(() => window.sockets), 1, "the client retried");
    // The user (here the DevTools protocol) allows the site: the permission's change event.
    await p.context().grantPermissions(["local-network-access"], { origin: origin("https") });
    assert.equal(await p.evaluate(() => window.connected), "open");
    assert.equal(await p.evaluate(() => window.client.getState()), "Available");
    assert.equal(await p.evaluate(() => window.sockets), 2);
  } finally {
    await p.context().close();
  }
});

test("a public https:// page with the permission granted connects and gets its reply", { timeout: 30000 }, async () => {
  const p = await open("https", { grant: true });
  try {
    assert.equal(await permission(p), "granted");
    await startClient(p, server.url);
    assert.equal(await p.evaluate(() => window.connected), "open");
    assert.equal(await p.evaluate(() => window.client.getState()), "Available");
    assert.deepEqual((await seen(p)).map((e) => [e.state, e.cause]), [["connecting", undefined], ["open", undefined]]);
  } finally {
    await p.context().close();
  }
});

test("bapiws not running (the permission granted): unreachable", { timeout: 30000 }, async () => {
  const p = await open("https", { grant: true });
  try {
    const dead = `ws://127.0.0.1:${await freePort()}`;
    await startClient(p, dead, { reconnect: false });
    const result = await p.evaluate(() => window.connected);
    assert.equal(result.name, "ConnectionError");
    assert.equal(result.cause, "unreachable");
    assert.match(result.message, /bapiws is not running/);
    // With reconnect, it keeps trying, each failure saying so.
    await startClient(p, dead, { minBackoffMs: 20, maxBackoffMs: 40 });
    await p.waitForFunction(() => window.seen.filter((e) => e.state === "reconnecting").length >= 2, null, { timeout: 10000 });
    const failures = (await seen(p)).filter((e) => e.state === "reconnecting");
    assert.ok(failures.every((e) => e.cause === "unreachable"), JSON.stringify(failures));
    await p.evaluate(() => window.client.close());
  } finally {
    await p.context().close();
  }
});

test("an origin the server does not allow (the permission granted): origin-refused", { timeout: 30000 }, async () => {
  const strict = await startServer(["--allowed-origins", "company.com"]);
  const p = await open("https", { grant: true });
  try {
    await startClient(p, strict.url, { reconnect: false });
    const result = await p.evaluate(() => window.connected);
    assert.equal(result.cause, "origin-refused");
    assert.match(result.message, /does not allow this page's origin/);
  } finally {
    await p.context().close();
    await strict.stop();
  }
});

test("a page in an iframe without allow=\"loopback-network\": frame-not-allowed, no retry; with it the frame may ask", { timeout: 30000 }, async () => {
  for (const [allow, cause] of [["", "frame-not-allowed"], ["loopback-network", "permission-denied"]]) {
    const context = await browser.newContext();
    try {
      const p = await context.newPage();
      const src = `${origin("widget")}/`;
      await p.goto(`${origin("https")}/frame?src=${encodeURIComponent(src)}&allow=${allow}`);
      const frame = await (await p.waitForSelector("iframe")).contentFrame();
      await frame.waitForLoadState();
      assert.equal(await permission(frame), allow ? "prompt" : "denied", allow);
      await startClient(frame, server.url, { minBackoffMs: 20, maxBackoffMs: 40 });
      await waitForCause(frame, cause);
      await frame.waitForTimeout(500);
      assert.equal(await frame.evaluate(() => window.sockets), 1, `${allow}: the client retried`);
      const last = (await seen(frame)).at(-1);
      assert.equal(last.cause, cause, allow);
      if (!allow) assert.match(last.error, /iframe without allow="loopback-network"/);
    } finally {
      await context.close();
    }
  }
});

test("the enterprise policy LoopbackNetworkAllowedForUrls lets the site connect without asking; an iframe without allow still cannot", { timeout: 60000 }, async () => {
  const managed = await policyBrowser("allowed", { LoopbackNetworkAllowedForUrls: [origin("https"), origin("widget")] });
  try {
    const p = await open("https", { on: managed });
    assert.equal(await permission(p), "granted");
    await startClient(p, server.url);
    assert.equal(await p.evaluate(() => window.connected), "open");
    assert.equal(await p.evaluate(() => window.client.getState()), "Available");
    await p.goto(`${origin("https")}/frame?src=${encodeURIComponent(`${origin("widget")}/`)}`);
    const frame = await (await p.waitForSelector("iframe")).contentFrame();
    await frame.waitForLoadState();
    await startClient(frame, server.url, { reconnect: false });
    assert.equal((await frame.evaluate(() => window.connected)).cause, "frame-not-allowed");
  } finally {
    await managed.close();
  }
});

test("with LocalNetworkAccessPermissionsPolicyDefaultEnabled too, an iframe without allow connects", { timeout: 60000 }, async () => {
  const managed = await policyBrowser("frames", {
    LoopbackNetworkAllowedForUrls: [origin("https"), origin("widget")],
    LocalNetworkAccessPermissionsPolicyDefaultEnabled: true,
  });
  try {
    const p = await open("https", { on: managed });
    await p.goto(`${origin("https")}/frame?src=${encodeURIComponent(`${origin("widget")}/`)}`);
    const frame = await (await p.waitForSelector("iframe")).contentFrame();
    await frame.waitForLoadState();
    await startClient(frame, server.url, { reconnect: false });
    assert.equal(await frame.evaluate(() => window.connected), "open");
    assert.equal(await frame.evaluate(() => window.client.getState()), "Available");
  } finally {
    await managed.close();
  }
});

test("the README's example shows the user what to do", { timeout: 60000 }, async () => {
  const cases = [
    ["http", false, server.url, /blocks this site from the phone on this computer/],
    ["https", true, server.url, /^The phone is connected\.$/],
    ["https", true, `ws://127.0.0.1:${await freePort()}`, /is not running on this computer/],
  ];
  for (const [name, grant, url, want] of cases) {
    exampleUrl = url;
    const context = await browser.newContext();
    try {
      if (grant) await context.grantPermissions(["local-network-access"], { origin: origin(name) });
      const p = await context.newPage();
      await p.goto(`${origin(name)}/example`);
      await p.locator("#phone-status", { hasText: want }).waitFor({ timeout: 10000 });
      assert.equal(await p.locator("#phone-allow").isHidden(), true);
    } finally {
      await context.close();
    }
  }
});

test("the console check of docs/integrating.md prints the cause from the application's page", { timeout: 60000 }, async () => {
  const snippet = testedBlocks(resolve(import.meta.dirname, "../../../docs/integrating.md"), ["console-check"]).get("console-check");
  const strict = await startServer(["--allowed-origins", "company.com"]);
  const dead = `ws://127.0.0.1:${await freePort()}`;
  const run = async (where, url) => {
    const code = snippet.trim().replace(/;$/, "").replace('"ws://127.0.0.1:9898"', JSON.stringify(url));
    return where.evaluate(`(async () => { return ${code}; })()`);
  };
  try {
    const cases = [
      ["http", false, server.url, "permission-denied", /plain http:\/\/ page/],
      ["https", false, server.url, "permission-denied", /allow it in the site's settings/],
      ["https", true, server.url, "ok", /this page reaches/],
      ["https", true, dead, "unreachable", /bapiws is not running/],
      ["https", true, strict.url, "origin-refused", /add it to allowed_origins/],
    ];
    for (const [name, grant, url, cause, text] of cases) {
      const p = await open(name, { grant });
      try {
        const lines = [];
        p.on("console", (m) => { if (m.type() === "log") lines.push(m.text()); });
        assert.equal(await run(p, url), cause, `${name} ${url}`);
        await p.waitForTimeout(100);
        assert.ok(lines.some((l) => l.startsWith(`bapiws from ${origin(name)}: ${cause}: `) && text.test(l)), lines.join("\n"));
      } finally {
        await p.context().close();
      }
    }
    const context = await browser.newContext();
    try {
      const p = await context.newPage();
      await p.goto(`${origin("https")}/frame?src=${encodeURIComponent(`${origin("widget")}/`)}`);
      const frame = await (await p.waitForSelector("iframe")).contentFrame();
      await frame.waitForLoadState();
      assert.equal(await run(frame, server.url), "frame-not-allowed");
    } finally {
      await context.close();
    }
  } finally {
    await strict.stop();
  }
});

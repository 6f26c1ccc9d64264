// Real headless Chromium (Debian's chromium, driven by playwright-core) against the real
// server: the dialer page, a page's own raw WebSocket, and this package's client (dist/)
// with the browser's WebSocket. Screenshots go to test-artifacts/ at the repository root.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { WebSocket } from "ws";
import { startServer, freePort, raw } from "./server.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = resolve(import.meta.dirname, "../../../test-artifacts");
let browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is not installed at ${CHROMIUM} (apt-get install chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

async function page(width = 1280, height = 800) {
  const context = await browser.newContext({ viewport: { width, height } });
  return context.newPage();
}

/** Collects the page's console errors and uncaught exceptions, from now on. */
function problems(p) {
  const seen = [];
  p.on("console", (m) => { if (m.type() === "error") seen.push(`console: ${m.text()}`); });
  p.on("pageerror", (e) => seen.push(`pageerror: ${e.message}`));
  return seen;
}

const shot = (p, name) => p.screenshot({ path: resolve(ARTIFACTS, `${name}.png`), fullPage: true });

test("call out, see the events and the call, hang up; answer a simulated incoming call", async () => {
  const server = await startServer();
  const p = await page();
  try {
    await p.goto(`http://127.0.0.1:${server.port}/`);
    await p.locator("#connection", { hasText: "open" }).waitFor();
    await p.locator("#phone-state", { hasText: "Available" }).waitFor();

    // Type a number and press Call.
    await p.locator("#number").fill("+358 40 123 4567");
    await p.locator("#call").click();
    await p.locator("#log li", { hasText: "CallingOut" }).waitFor();
    await p.locator("#log li", { hasText: "CallConnected" }).waitFor();
    const row = p.locator("#calls tbody tr");
    await row.filter({ hasText: "Connected" }).waitFor();
    assert.equal(await row.count(), 1);
    assert.match(await row.first().innerText(), /Outbound\s+Connected\s+\+358401234567/);
    await p.locator("#phone-state", { hasText: "Busy" }).waitFor();
    await shot(p, "dialer-call-connected");

    await p.locator("#hangup").click();
    await p.locator("#log li", { hasText: "CallDisconnected" }).waitFor();
    await p.locator("#no-calls").waitFor({ state: "visible" });
    assert.equal(await row.count(), 0);

    // A simulated incoming call appears and is answered from the page (keyboard).
    await p.locator("#sim-number").fill("0505010269");
    await p.locator("#sim-incoming").click();
    await p.locator("#log li", { hasText: "CallComing" }).waitFor();
    await row.filter({ hasText: "Ringing" }).waitFor();
    await p.keyboard.press("Alt+a");
    await row.filter({ hasText: "Connected" }).waitFor();
    assert.match(await row.first().innerText(), /Inbound\s+Connected\s+0505010269/);
    await shot(p, "dialer-incoming-answered");
    // Nothing rings: Answer does not apply (nor its shortcut); Hang up does.
    assert.equal(await p.locator("#answer").isDisabled(), true);
    assert.equal(await p.locator("#hangup").isEnabled(), true);
    await p.keyboard.press("Alt+a");
    assert.equal(await p.locator("#message").isHidden(), true);
    await p.keyboard.press("Alt+h");
    await p.locator("#no-calls").waitFor({ state: "visible" });
    assert.equal(await p.locator("#hangup").isDisabled(), true);
  } finally {
    await p.context().close();
    await server.stop();
  }
});

test("call control from the page: banner, per-call actions, hold/resume, transfer, keypad, mute, timer", { timeout: 60000 }, async () => {
  const server = await startServer(["--sim-auto-answer", "false"]);
  const p = await page();
  const failures = [];
  p.on("pageerror", (e) => failures.push(e.message));
  try {
    await p.goto(`http://127.0.0.1:${server.port}/`);
    await p.locator("#connection", { hasText: "open" }).waitFor();
    const driver = await raw(server.url, WebSocket);
    const rows = p.locator("#calls tbody tr");
    const row = (id) => p.locator(`#calls tbody tr[data-call-id="${id}"]`);

    // An incoming call: the banner shows the caller; its Answer answers it.
    const a = (await driver.call("Sim.IncomingCall", ["0501"])).result;
    await p.locator("#incoming", { hasText: "0501" }).waitFor();
    await shot(p, "dialer-incoming-banner");
    await row(a).locator("button", { hasText: "Reject" }).waitFor();
    await p.locator("#incoming-answer").click();
    await row(a).filter({ hasText: "Connected" }).waitFor();
    await p.locator("#incoming").waitFor({ state: "hidden" });
    await p.locator("#in-call").waitFor();

    // The timer counts.
    await p.locator("#timer", { hasText: /^0:0[1-9]$/ }).waitFor({ timeout: 5000 });
    assert.match(await row(a).locator("td.time").innerText(), /^0:0\d$/);

    // The keypad sends DTMF on the connected call.
    await p.locator('#keypad button[data-digit="5"]').click();
    await p.locator('#keypad button[data-digit="#"]').click();
    await p.locator("#log li", { hasText: "DTMF sent" }).nth(1).waitFor();
    assert.equal(await p.locator("#message").isHidden(), true);

    // Mute toggles on MuteChanged.
    await p.locator("#mute").click();
    await p.locator("#log li", { hasText: "MuteChanged" }).waitFor();
    await p.locator('#mute[aria-pressed="true"]', { hasText: "Unmute" }).waitFor();
    await shot(p, "dialer-connected-muted");
    await p.locator("#mute").click();
    await p.locator('#mute[aria-pressed="false"]', { hasText: "Mute" }).waitFor();

    // Hold and resume from the row.
    await row(a).locator("button", { hasText: "Hold" }).click();
    await row(a).filter({ hasText: "OnHold" }).waitFor();
    await p.locator("#log li", { hasText: "CallHeld" }).waitFor();
    await p.locator("#in-call").waitFor({ state: "hidden" });
    await row(a).locator("button", { hasText: "Resume" }).click();
    await row(a).filter({ hasText: "Connected" }).waitFor();
    await p.locator("#log li", { hasText: "CallResumed" }).waitFor();

    // A second call rejected from the banner.
    const b = (await driver.call("Sim.IncomingCall", ["0502"])).result;
    await p.locator("#incoming", { hasText: "0502" }).waitFor();
    await p.locator("#incoming-reject").click();
    await p.locator("#log li", { hasText: `${b}  rejected` }).waitFor();
    await p.locator("#incoming").waitFor({ state: "hidden" });

    // A third answered from its row: the first is held by the phone.
    const c = (await driver.call("Sim.IncomingCall", ["0503"])).result;
    await row(c).locator("button", { hasText: "Answer" }).click();
    await row(c).filter({ hasText: "Connected" }).waitFor();
    await row(a).filter({ hasText: "OnHold" }).waitFor();

    // Transfer the connected call from its row.
    await row(c).locator("button", { hasText: "Transfer" }).click();
    await p.locator("#transfer-form").waitFor();
    // The server's refusal is shown, and the form stays open.
    await p.locator("#transfer-number").fill("12ab");
    await p.locator("#transfer-go").click();
    await p.locator("#message").waitFor({ state: "visible" });
    assert.equal(await p.locator("#transfer-form").isVisible(), true);
    await p.locator("#transfer-number").fill("+358 40 765 4321");
    await shot(p, "dialer-transfer");
    await p.locator("#transfer-go").click();
    await p.locator("#log li", { hasText: "CallTransferred" }).waitFor();
    await p.locator("#message").waitFor({ state: "hidden" });
    await row(c).waitFor({ state: "detached" });
    await p.locator("#transfer-form").waitFor({ state: "hidden" });
    assert.match(await p.locator("#log li", { hasText: "CallTransferred" }).innerText(), /\+358407654321/);

    // The held call hung up from its row.
    await row(a).locator("button", { hasText: "Hang up" }).click();
    await p.locator("#no-calls").waitFor({ state: "visible" });
    assert.equal(await rows.count(), 0);
    driver.close();
    assert.deepEqual(failures, []);
  } finally {
    await p.context().close();
    await server.stop();
  }
});

test("a page from an origin that is not allowed cannot connect, and says so", async () => {
  const server = await startServer(["--allowed-origins", "company.com"]);
  // The same page, served from another origin (a plain HTTP server on another port).
  const files = {};
  for (const path of ["/", "/dialer.js", "/bapiws-client.js"]) {
    files[path] = await (await fetch(`http://127.0.0.1:${server.port}${path}`)).text();
  }
  const other = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const body = files[path];
    if (body === undefined) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": path === "/" ? "text/html" : "text/javascript" }).end(body);
  });
  const port = await freePort();
  await new Promise((ok) => other.listen(port, "127.0.0.1", ok));
  const p = await page();
  try {
    await p.goto(`http://127.0.0.1:${port}/?server=ws://127.0.0.1:${server.port}`);
    const message = p.locator("#message");
    await message.filter({ hasText: "does not allow this page's origin" }).waitFor({ timeout: 15000 });
    assert.match(await message.innerText(), new RegExp(`http://127\\.0\\.0\\.1:${port}`));
    assert.notEqual(await p.locator("#connection").innerText(), "open");
    await shot(p, "dialer-origin-refused");
  } finally {
    await p.context().close();
    other.close();
    await server.stop();
  }
});

test("/health answers JSON and obeys the origin rules", async () => {
  const server = await startServer(["--allowed-origins", "company.com"]);
  try {
    const ok = await fetch(`http://127.0.0.1:${server.port}/health`, { headers: { origin: "https://crm.company.com" } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), "https://crm.company.com");
    const health = await ok.json();
    assert.equal(health.name, "bapiws");
    assert.equal(health.default_backend, "sim");
    assert.ok(health.backends.some((b) => b.name === "sim" && b.state === "Available"));
    const refused = await fetch(`http://127.0.0.1:${server.port}/health`, { headers: { origin: "https://evil.example" } });
    assert.equal(refused.status, 403);
    const page = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { origin: "https://evil.example" } });
    assert.equal(page.status, 403);
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/nope`)).status, 404);
  } finally {
    await server.stop();
  }
});

// A page of the server's own origin that opens no WebSocket of its own.
const quietPage = (server) => `http://127.0.0.1:${server.port}/health`;

test("a page's raw WebSocket: close(1000) completes the closing handshake (wasClean, code 1000)", { timeout: 30000 }, async () => {
  const server = await startServer();
  const p = await page();
  try {
    await p.goto(quietPage(server));
    const closed = await p.evaluate(async (url) => {
      const ws = new WebSocket(url);
      await new Promise((ok, fail) => {
        ws.onopen = ok;
        ws.onerror = () => fail(new Error("the WebSocket failed to open"));
      });
      const ev = await new Promise((ok) => {
        ws.onclose = ok;
        ws.close(1000);
      });
      return { code: ev.code, wasClean: ev.wasClean };
    }, server.url);
    assert.deepEqual(closed, { code: 1000, wasClean: true });
  } finally {
    await p.context().close();
    await server.stop();
  }
});

// By the WebSockets Standard a browser drops the messages that arrive after close() was
// called (readyState CLOSING), so a page cannot see the reply to a request sent just before
// close(); Chromium does drop it. What the page can rely on: the server carries the
// request out and then completes the closing handshake. (That the reply comes before the
// server's close frame is checked with `ws`, which delivers it: client-ws.test.mjs.)
test("a page's raw WebSocket: send(request) then close(): the request is carried out, the close is clean", { timeout: 30000 }, async () => {
  const server = await startServer();
  const p = await page();
  try {
    await p.goto(quietPage(server));
    const closed = await p.evaluate(async (url) => {
      const ws = new WebSocket(url);
      await new Promise((ok, fail) => {
        ws.onopen = ok;
        ws.onerror = () => fail(new Error("the WebSocket failed to open"));
      });
      return new Promise((ok) => {
        ws.onclose = (e) => ok({ code: e.code, wasClean: e.wasClean });
        ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "Sim.IncomingCall", params: ["0505010269"] }));
        ws.close(1000);
      });
    }, server.url);
    assert.deepEqual(closed, { code: 1000, wasClean: true });
    const other = await raw(server.url, WebSocket);
    try {
      const calls = await other.call("GetActiveCalls");
      assert.deepEqual(calls.result.slice(0, 4), ["1", "Inbound", "Ringing", "0505010269"], JSON.stringify(calls));
    } finally {
      other.close();
    }
  } finally {
    await p.context().close();
    await server.stop();
  }
});

test("bapiws-client with Chromium's WebSocket: connect() rejects, retries attempt after attempt, refused Init", { timeout: 30000 }, async () => {
  const server = await startServer();
  const p = await page();
  try {
    await p.goto(quietPage(server));
    // This package's build, as a module of the page.
    const dist = readFileSync(resolve(import.meta.dirname, "../dist/index.js"), "utf8");
    await p.addScriptTag({ type: "module", content: `${dist}\nwindow.bapiws = { BapiwsClient, ConnectionError, RpcError };` });
    await p.waitForFunction(() => window.bapiws !== undefined);
    const dead = `ws://127.0.0.1:${await freePort()}`;
    const result = await p.evaluate(async ({ url, dead }) => {
      const { BapiwsClient, ConnectionError, RpcError } = window.bapiws;
      const out = {};
      // Nothing listens and no reconnect: connect() rejects.
      let c = new BapiwsClient({ url: dead, reconnect: false });
      out.refused = await c.connect().then(() => "resolved", (e) => e instanceof ConnectionError && e.message);
      // With reconnect: one reconnecting event per attempt; close() rejects connect().
      c = new BapiwsClient({ url: dead, minBackoffMs: 20, maxBackoffMs: 40 });
      const states = [];
      const third = new Promise((ok) => c.on("connection", (e) => {
        states.push(`${e.state} ${e.attempt}`);
        if (e.attempt === 3) ok();
      }));
      const retrying = c.connect().then(() => "resolved", (e) => e instanceof ConnectionError && e.message);
      await third;
      c.close();
      out.retrying = await retrying;
      out.states = states;
      // A refused Init rejects with the server's error.
      c = new BapiwsClient({ url, backend: "nope" });
      out.init = await c.connect().then(() => "resolved", (e) => e instanceof RpcError && [e.code, e.data]);
      // And the real thing.
      c = new BapiwsClient({ url, backend: "sim", keepAliveMs: 0 });
      await c.connect();
      out.state = await c.request("GetState", [], { signal: AbortSignal.timeout(5000) });
      c.close();
      return out;
    }, { url: server.url, dead });
    assert.match(result.refused, new RegExp(`connection to ${dead} failed`));
    assert.match(result.retrying, /close\(\) was called/);
    assert.deepEqual(result.states, ["connecting 0", "reconnecting 1", "reconnecting 2", "reconnecting 3", "closed 3"]);
    assert.equal(result.init[0], -32003);
    assert.ok(result.init[1].includes("sim"), JSON.stringify(result.init));
    assert.equal(result.state, "Available");
  } finally {
    await p.context().close();
    await server.stop();
  }
});

// The page's layout at a phone's width and a laptop's: no sideways scroll, the calls table
// whole where there is room, no console errors; the buttons that apply enabled, the others
// not. The 1280 px screenshot is the one in docs/dialer.png.
for (const width of [390, 1280]) {
  test(`the dialer at ${width} px: no sideways scroll, no console errors, only the buttons that apply`, { timeout: 60000 }, async () => {
    const server = await startServer(["--sim-auto-answer", "false"]);
    const p = await page(width, 900);
    const seen = problems(p);
    try {
      await p.goto(`http://127.0.0.1:${server.port}/`);
      await p.locator("#connection", { hasText: "open" }).waitFor();
      await p.locator("#phone-state", { hasText: "Available" }).waitFor();
      const enabled = async () => Object.fromEntries(await Promise.all(
        ["call", "answer", "hangup", "sim-remote-answer", "sim-remote-hangup", "sim-offline", "sim-online"]
          .map(async (id) => [id, await p.locator(`#${id}`).isEnabled()])));

      // No calls: nothing to answer or hang up.
      assert.deepEqual(await enabled(), { call: true, answer: false, hangup: false, "sim-remote-answer": false,
        "sim-remote-hangup": false, "sim-offline": true, "sim-online": false });

      // An outbound call, calling: the far end can answer; it can be hung up, not answered.
      await p.locator("#number").fill("+358 40 123 4567");
      await p.locator("#call").click();
      const rows = p.locator("#calls tbody tr");
      await rows.filter({ hasText: "Calling" }).waitFor();
      assert.deepEqual(await enabled(), { call: true, answer: false, hangup: true, "sim-remote-answer": true,
        "sim-remote-hangup": true, "sim-offline": true, "sim-online": false });
      await p.locator("#sim-remote-answer").click();
      await rows.filter({ hasText: "Connected" }).waitFor();
      assert.equal(await p.locator("#sim-remote-answer").isDisabled(), true);

      // And an incoming call, ringing: now Answer applies.
      await p.locator("#sim-number").fill("0505010269");
      await p.locator("#sim-incoming").click();
      await rows.filter({ hasText: "Ringing" }).waitFor();
      assert.equal(await p.locator("#answer").isEnabled(), true);
      await p.locator("#incoming").waitFor();
      await p.locator("#log li", { hasText: "CallComing" }).waitFor();

      await shot(p, `dialer-${width}`);

      // The layout: the page does not scroll sideways.
      const layout = await p.evaluate(() => {
        const scroll = document.querySelector("#calls").parentElement;
        const id = document.querySelector("#calls tbody tr td.id");
        return {
          scrollWidth: document.documentElement.scrollWidth,
          clientWidth: document.documentElement.clientWidth,
          tableWidth: scroll.scrollWidth,
          tableRoom: scroll.clientWidth,
          idRight: id.getBoundingClientRect().right,
          roomRight: scroll.getBoundingClientRect().right,
        };
      });
      assert.ok(layout.scrollWidth <= layout.clientWidth, `the page scrolls sideways: ${JSON.stringify(layout)}`);
      if (width >= 1280) {
        // Room enough: the calls table, its call id column included, is not cut.
        assert.ok(layout.tableWidth <= layout.tableRoom, `the calls table is cut: ${JSON.stringify(layout)}`);
        assert.ok(layout.idRight <= layout.roomRight, `the call id column is cut: ${JSON.stringify(layout)}`);
      }

      // The server's errors are shown capitalised, as the page's own are.
      await rows.filter({ hasText: "Connected" }).locator("button", { hasText: "Transfer" }).click();
      await p.locator("#transfer-number").fill("12ab");
      await p.locator("#transfer-go").click();
      await p.locator("#message").waitFor({ state: "visible" });
      const message = await p.locator("#message").innerText();
      assert.match(message, /^[A-Z]/, message);
      // A long message wraps: still no sideways scroll.
      assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth));
      await shot(p, `dialer-${width}-error`);
      await p.locator("#transfer-cancel").click();

      // Offline: only Go online applies.
      await p.locator("#sim-offline").click();
      await p.locator("#phone-state", { hasText: "Offline" }).waitFor();
      await p.locator("#no-calls").waitFor({ state: "visible" });
      assert.deepEqual(await enabled(), { call: true, answer: false, hangup: false, "sim-remote-answer": false,
        "sim-remote-hangup": false, "sim-offline": false, "sim-online": true });
      await p.locator("#sim-online").click();
      await p.locator("#phone-state", { hasText: "Available" }).waitFor();
      assert.deepEqual(seen, []);
    } finally {
      await p.context().close();
      await server.stop();
    }
  });
}

test("the backend chooser lists only the backends the server has (and their aliases)", async () => {
  const server = await startServer();
  const p = await page();
  try {
    const health = await (await fetch(`http://127.0.0.1:${server.port}/health`)).json();
    await p.goto(`http://127.0.0.1:${server.port}/`);
    await p.locator("#connection", { hasText: "open" }).waitFor();
    await p.locator("#backend option").first().waitFor({ state: "attached" });
    const offered = await p.locator("#backend option").evaluateAll((os) => os.map((o) => o.value));
    const names = health.backends.map((b) => b.name);
    const aliases = Object.entries(health.aliases ?? {}).filter(([, t]) => names.includes(t)).map(([a]) => a);
    assert.deepEqual(offered, [...names, ...aliases]);
    // baresip is not configured here: the server does not have it, the page does not offer it.
    assert.ok(!names.includes("baresip"), JSON.stringify(health.backends));
    assert.ok(!offered.includes("baresip"), JSON.stringify(offered));
  } finally {
    await p.context().close();
    await server.stop();
  }
});

test("a backend that is offline says why: baresip not installed", { timeout: 30000 }, async () => {
  const server = await startServer(["--default-backend", "baresip", "--baresip-binary", "/nonexistent/baresip"]);
  const p = await page();
  try {
    // Once the server has tried to start baresip, /health has the cause.
    const deadline = Date.now() + 10000;
    let baresip;
    do {
      const health = await (await fetch(`http://127.0.0.1:${server.port}/health`)).json();
      baresip = health.backends.find((b) => b.name === "baresip");
      if (baresip?.last_error) break;
      await new Promise((ok) => setTimeout(ok, 100));
    } while (Date.now() < deadline);
    assert.ok(baresip?.last_error, JSON.stringify(baresip));

    await p.goto(`http://127.0.0.1:${server.port}/`);
    await p.locator("#connection", { hasText: "open" }).waitFor();
    // Configured here, so offered, beside sim.
    const offered = await p.locator("#backend option").evaluateAll((os) => os.map((o) => o.value));
    assert.ok(offered.includes("baresip") && offered.includes("sim"), JSON.stringify(offered));
    const message = p.locator("#message");
    await message.filter({ hasText: "baresip-core" }).waitFor();
    assert.match(await message.innerText(), /^The baresip backend is offline: cannot start baresip: .*not found/);

    // A call refused with -32001 shows the cause the server sends in its data.
    await p.locator("#number").fill("1002");
    await p.locator("#call").click();
    await message.filter({ hasText: "not reachable" }).waitFor();
    const text = await message.innerText();
    assert.match(text, /^[A-Z]/, text);
    assert.ok(text.includes("baresip-core"), text);
    await shot(p, "dialer-baresip-missing");
  } finally {
    await p.context().close();
    await server.stop();
  }
});

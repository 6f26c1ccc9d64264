// The dialer page in real headless Chromium (Debian's chromium, driven by playwright-core)
// against the real server. Screenshots go to test-artifacts/ at the repository root.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { startServer, freePort } from "./server.mjs";

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

async function page() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  return context.newPage();
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
    await p.locator("#answer").click();
    await p.locator("#message", { hasText: "no ringing inbound call" }).waitFor();
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

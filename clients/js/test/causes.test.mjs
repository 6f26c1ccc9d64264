// Why a connection attempt failed: connectionCause's rules, and what the client does with
// each cause (no connect timeout while the browser asks, no retry loop while it refuses,
// resuming when the permission changes, requestAccess()). The browser is played by fakes
// here: a WebSocket class the test opens and fails, a Permissions API whose state the test
// sets, and a fetch that answers as the test says. The same causes from real Chromium
// against the real server: lna.e2e.test.mjs.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { BapiwsClient, ConnectionError, connectionCause } from "../dist/index.js";

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** A WebSocket class whose sockets the test opens or fails. */
function fakeSockets() {
  const made = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.closed = false;
      made.push(this);
    }
    send() {}
    close() {
      this.closed = true;
      this.readyState = 3;
    }
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    /** What a browser does when it refuses or nothing listens: error, then close 1006. */
    fail() {
      this.readyState = 3;
      this.onerror?.({});
      this.onclose?.({ code: 1006, reason: "" });
    }
  }
  return { FakeSocket, made, last: () => made[made.length - 1] };
}

/** A Permissions API with one status whose state the test sets (firing `change`). */
function fakePermissions(state) {
  const listeners = [];
  const names = [];
  const status = {
    state,
    addEventListener(type, listener) {
      if (type === "change") listeners.push(listener);
    },
  };
  return {
    names,
    api: { query: async ({ name }) => { names.push(name); return status; } },
    set(next) {
      status.state = next;
      for (const l of listeners) l();
    },
  };
}

/** A fetch for the /health probe: nothing listens, the origin is refused, or it answers. */
function fakeFetch(kind) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push(init.mode);
    if (kind === "none") throw new TypeError("Failed to fetch");
    if (kind === "refused" && init.mode === "cors") throw new TypeError("Failed to fetch");
    return { ok: kind === "answered", status: kind === "answered" ? 200 : 0 };
  };
  return { fetch, calls };
}

/** Every `connection` event of the client. */
function record(c) {
  const seen = [];
  c.on("connection", (e) => seen.push(e));
  return seen;
}

async function until(what, ms = 2000) {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(5);
  }
}

// Some tests play a page (location, navigator, window, document): put Node's back after.
const saved = Object.fromEntries(["location", "navigator", "window", "document"].map((k) => [k, Object.getOwnPropertyDescriptor(globalThis, k)]));
afterEach(() => {
  for (const [k, d] of Object.entries(saved)) {
    if (d) Object.defineProperty(globalThis, k, d);
    else delete globalThis[k];
  }
});
function playPage(parts) {
  for (const [k, v] of Object.entries(parts)) {
    Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  }
}

test("connectionCause: the facts that give each cause", () => {
  const https = { pageProtocol: "https:", urlProtocol: "ws:", probe: "skipped" };
  const cases = [
    // The WebSocket constructor refuses ws:// from an https:// page; WebKit refuses it too.
    [{ ...https, thrown: "SecurityError", permission: "unsupported" }, "mixed-content"],
    [{ ...https, webkit: true, permission: "unsupported", probe: "none" }, "mixed-content"],
    // Not mixed content: a plain http:// page, or wss://.
    [{ ...https, pageProtocol: "http:", webkit: true, permission: "unsupported", probe: "none" }, "unreachable"],
    [{ ...https, urlProtocol: "wss:", webkit: true, permission: "unsupported", probe: "none" }, "unreachable"],
    // The browser refuses: Block, a policy, or a plain http:// page (not a secure context).
    [{ ...https, permission: "denied" }, "permission-denied"],
    [{ ...https, pageProtocol: "http:", permission: "denied" }, "permission-denied"],
    // An iframe without allow="loopback-network".
    [{ ...https, permission: "denied", frameAllowed: false }, "frame-not-allowed"],
    [{ ...https, permission: "prompt", frameAllowed: false }, "frame-not-allowed"],
    [{ ...https, permission: "denied", frameAllowed: true }, "permission-denied"],
    // The attempt waited on the prompt and failed with the permission still `prompt`:
    // the user closed the prompt.
    [{ ...https, permission: "prompt", prompted: true }, "permission-needed"],
    // `prompt` without waiting: a page the check does not apply to (the server's own,
    // one on this machine); the probe tells.
    [{ ...https, permission: "prompt", prompted: false, probe: "none" }, "unreachable"],
    [{ ...https, permission: "prompt", probe: "refused" }, "origin-refused"],
    // Something answered, but not to this page: the server refuses the origin.
    [{ ...https, permission: "granted", probe: "refused" }, "origin-refused"],
    [{ ...https, permission: "unsupported", probe: "refused" }, "origin-refused"],
    // Nothing answered.
    [{ ...https, permission: "granted", probe: "none" }, "unreachable"],
    [{ urlProtocol: "ws:", permission: "unsupported", probe: "none" }, "unreachable"],
    // The server answers this page: the cause is something else (a connection limit…).
    [{ ...https, permission: "granted", probe: "answered" }, undefined],
    [{ ...https, permission: "granted", probe: "skipped" }, undefined],
  ];
  for (const [facts, want] of cases) assert.equal(connectionCause(facts), want, JSON.stringify(facts));
});

test("the permission asked about: loopback-network for loopback, local-network for a private address, none for another; never local-network-access", async () => {
  const want = {
    "ws://127.0.0.1:9898": "loopback-network",
    "ws://127.1.2.3:9898": "loopback-network",
    "ws://localhost:9898": "loopback-network",
    "ws://[::1]:9898": "loopback-network",
    "ws://192.168.1.10:9898": "local-network",
    "ws://10.0.0.5:9898": "local-network",
    "ws://172.20.0.1:9898": "local-network",
    "wss://phone.example.com": undefined,
  };
  for (const [url, name] of Object.entries(want)) {
    const { FakeSocket, last } = fakeSockets();
    const perms = fakePermissions("granted");
    const c = new BapiwsClient({ url, WebSocket: FakeSocket, permissions: perms.api, fetch: null, keepAliveMs: 0 });
    const opened = c.connect();
    await sleep(5);
    last().open();
    await opened;
    c.close();
    assert.deepEqual(perms.names, name ? [name] : [], url);
  }
});

test("while the browser asks: no connect timeout cuts the attempt, the page learns permission-needed, and Allow opens it", async () => {
  const { FakeSocket, made, last } = fakeSockets();
  const perms = fakePermissions("prompt");
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: perms.api, fetch: null, keepAliveMs: 0,
    connectTimeoutMs: 50, promptHintMs: 100 });
  const seen = record(c);
  const opened = c.connect();
  await until(() => seen.some((e) => e.cause === "permission-needed"));
  await sleep(200); // four connect timeouts
  assert.equal(made.length, 1);
  assert.equal(last().closed, false, "the attempt was cut while the prompt showed");
  perms.set("granted");
  last().open();
  await opened;
  assert.deepEqual(seen.map((e) => [e.state, e.attempt, e.cause]),
    [["connecting", 0, undefined], ["connecting", 0, "permission-needed"], ["open", 0, undefined]]);
  c.close();
});

test("the user blocks: permission-denied, no retry loop, requestAccess() rejects at once; the client resumes when the permission changes", async () => {
  const { FakeSocket, made, last } = fakeSockets();
  const perms = fakePermissions("prompt");
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: perms.api, fetch: null, keepAliveMs: 0,
    promptHintMs: 20, minBackoffMs: 5, maxBackoffMs: 10 });
  const seen = record(c);
  const opened = c.connect();
  await until(() => seen.some((e) => e.cause === "permission-needed"));
  perms.set("denied"); // Block: the browser fails the socket
  last().fail();
  await until(() => seen.some((e) => e.cause === "permission-denied"));
  const denied = seen.find((e) => e.cause === "permission-denied");
  assert.equal(denied.state, "reconnecting");
  assert.match(denied.error, /does not let this site reach the computer/);
  await sleep(150); // many backoff delays
  assert.equal(made.length, 1, "retried while the browser refuses");
  await assert.rejects(c.requestAccess(), (e) => e instanceof ConnectionError && e.cause === "permission-denied");
  assert.equal(made.length, 1);
  // The user allows the site in its settings: the status changes, the client tries again.
  perms.set("granted");
  await until(() => made.length === 2);
  last().open();
  await opened;
  assert.equal(c.state, "open");
  c.close();
});

test("denied from the start (a plain http:// page): one attempt, permission-denied; without reconnect connect() rejects with it", async () => {
  const { FakeSocket, made, last } = fakeSockets();
  const perms = fakePermissions("denied");
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: perms.api, fetch: fakeFetch("none").fetch,
    keepAliveMs: 0, reconnect: false });
  const result = c.connect().then(() => "opened", (e) => e);
  await until(() => made.length === 1);
  last().fail();
  const e = await result;
  assert.ok(e instanceof ConnectionError, String(e));
  assert.equal(e.cause, "permission-denied");
  assert.equal(made.length, 1);
  assert.equal(c.state, "closed");
});

test("the user closes the prompt without choosing: permission-needed, no retry loop; requestAccess() (a click) tries again", async () => {
  const { FakeSocket, made, last } = fakeSockets();
  const perms = fakePermissions("prompt");
  const probe = fakeFetch("none");
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: perms.api, fetch: probe.fetch, keepAliveMs: 0,
    promptHintMs: 20, minBackoffMs: 5, maxBackoffMs: 10 });
  const seen = record(c);
  const opened = c.connect();
  await until(() => seen.some((e) => e.cause === "permission-needed"));
  last().fail(); // dismissed: still `prompt`
  await until(() => seen.some((e) => e.state === "reconnecting"));
  assert.deepEqual(seen.at(-1).cause, "permission-needed");
  assert.deepEqual(probe.calls, [], "the probe would show the prompt again");
  await sleep(100);
  assert.equal(made.length, 1);
  const clicked = c.requestAccess();
  assert.equal(made.length, 2);
  last().open();
  await Promise.all([clicked, opened]);
  c.close();
});

test("nothing listens: unreachable, and the client keeps retrying with backoff", async () => {
  const { FakeSocket, made, last } = fakeSockets();
  const probe = fakeFetch("none");
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: null, fetch: probe.fetch, keepAliveMs: 0,
    minBackoffMs: 5, maxBackoffMs: 10 });
  const seen = record(c);
  const opened = c.connect().catch((e) => e);
  last().fail();
  await until(() => made.length === 2);
  last().fail();
  await until(() => made.length === 3);
  c.close();
  assert.ok((await opened) instanceof ConnectionError);
  const failures = seen.filter((e) => e.state === "reconnecting");
  assert.deepEqual(failures.map((e) => e.cause), ["unreachable", "unreachable"]);
  assert.match(failures[0].error, /bapiws is not running/);
  assert.deepEqual(probe.calls.slice(0, 2), ["cors", "no-cors"]);
});

test("something answers but not to this page: origin-refused (and retries, for the day the administrator allows it)", async () => {
  const { FakeSocket, made, last } = fakeSockets();
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: fakePermissions("granted").api,
    fetch: fakeFetch("refused").fetch, keepAliveMs: 0, minBackoffMs: 5, maxBackoffMs: 10 });
  const seen = record(c);
  const opened = c.connect().catch((e) => e);
  await until(() => made.length === 1);
  last().fail();
  await until(() => made.length === 2);
  c.close();
  await opened;
  const failed = seen.find((e) => e.state === "reconnecting");
  assert.equal(failed.cause, "origin-refused");
  assert.match(failed.error, /does not allow this page's origin/);
});

test("ws:// from an https:// page refused by the WebSocket constructor (SecurityError): mixed-content, closed at once", async () => {
  playPage({ location: { protocol: "https:" } });
  let made = 0;
  class Refusing {
    constructor() {
      made += 1;
      throw new DOMException("An insecure WebSocket connection may not be initiated from a page loaded over HTTPS.", "SecurityError");
    }
  }
  const c = new BapiwsClient({ WebSocket: Refusing, permissions: null, fetch: null, keepAliveMs: 0 });
  const seen = record(c);
  const e = await c.connect().then(() => "opened", (e) => e);
  assert.ok(e instanceof ConnectionError, String(e));
  assert.equal(e.cause, "mixed-content");
  assert.equal(made, 1);
  assert.deepEqual(seen.at(-1).state, "closed");
  assert.equal(seen.at(-1).cause, "mixed-content");
});

test("ws:// from an https:// page in WebKit (the socket fails): mixed-content, not unreachable", async () => {
  playPage({ location: { protocol: "https:" }, navigator: { vendor: "Apple Computer, Inc." } });
  const { FakeSocket, made, last } = fakeSockets();
  const c = new BapiwsClient({ WebSocket: FakeSocket, fetch: fakeFetch("none").fetch, keepAliveMs: 0,
    minBackoffMs: 5, maxBackoffMs: 10 });
  const result = c.connect().then(() => "opened", (e) => e);
  last().fail();
  const e = await result;
  assert.equal(e.cause, "mixed-content");
  await sleep(50);
  assert.equal(made.length, 1, "retrying cannot help");
});

test("in an iframe without allow=\"loopback-network\": frame-not-allowed, no retry loop, requestAccess() rejects with it", async () => {
  playPage({ window: { top: {} }, document: { featurePolicy: { allowsFeature: (name) => name !== "loopback-network" } } });
  const { FakeSocket, made, last } = fakeSockets();
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: fakePermissions("denied").api,
    fetch: fakeFetch("none").fetch, keepAliveMs: 0, minBackoffMs: 5, maxBackoffMs: 10 });
  const seen = record(c);
  c.connect().catch(() => {});
  await until(() => made.length === 1);
  last().fail();
  await until(() => seen.some((e) => e.cause));
  assert.equal(seen.at(-1).cause, "frame-not-allowed");
  assert.match(seen.at(-1).error, /allow="loopback-network"/);
  await sleep(50);
  assert.equal(made.length, 1);
  await assert.rejects(c.requestAccess(), (e) => e.cause === "frame-not-allowed");
  c.close();
});

test("a page on this computer itself (the dialer, localhost): no permission asked about, the connect timeout applies", async () => {
  playPage({ location: { protocol: "http:", href: "http://127.0.0.1:9898/" } });
  const { FakeSocket, made } = fakeSockets();
  const perms = fakePermissions("prompt"); // what Chromium reads there, although the check does not apply
  const c = new BapiwsClient({ WebSocket: FakeSocket, permissions: perms.api, fetch: fakeFetch("none").fetch,
    keepAliveMs: 0, connectTimeoutMs: 50, minBackoffMs: 5, maxBackoffMs: 10 });
  const seen = record(c);
  c.connect().catch(() => {});
  await until(() => made.length >= 2); // the first attempt was cut by its timeout
  c.close();
  assert.deepEqual(perms.names, []);
  assert.match(seen.find((e) => e.state === "reconnecting").error, /within 50 ms/);
  assert.ok(!seen.some((e) => e.cause === "permission-needed"));
});

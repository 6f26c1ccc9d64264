// The client against the real server: every method, every notification, timeouts,
// connecting, reconnecting and re-Init after a server restart, keep-alive. Run once per
// WebSocket implementation: client.test.mjs (Node 20's global one, undici) and
// client-ws.test.mjs (the `ws` package).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  BapiwsClient,
  ConnectionError,
  RpcError,
  TimeoutError,
  parseActiveCalls,
} from "../dist/index.js";
import { startServer, next, raw, freePort, collect, pause, resume, blackHole } from "./server.mjs";

/**
 * Defines the tests. `WebSocket` is the implementation to pass as the client's option, or
 * undefined to let the client find the global one.
 */
export function clientSuite({ WebSocket }) {
  const impl = WebSocket ?? globalThis.WebSocket;
  const client = (options) => new BapiwsClient({ keepAliveMs: 0, WebSocket, ...options });
  /** Every `connection` event of `c`, as `state attempt` strings (and the errors). */
  const record = (c) => {
    const seen = [];
    c.on("connection", (e) => seen.push(e));
    return {
      seen,
      get states() {
        return seen.map((e) => `${e.state} ${e.attempt}`);
      },
    };
  };
  const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

  let server;
  before(async () => { server = await startServer(["--sim-auto-answer", "false", "--extra-backend", "agent2=sim"]); });
  after(async () => { await server?.stop(); });

  async function connected(options = {}) {
    const c = client({ url: server.url, ...options });
    await c.connect();
    return c;
  }

  test("parseActiveCalls reads six-field records", () => {
    assert.deepEqual(parseActiveCalls([]), []);
    assert.deepEqual(
      parseActiveCalls(["1", "Outbound", "Calling", "+358449388834", "ID1", "2016-02-16 13:26:21.183"]),
      [{ ordinal: 1, direction: "Outbound", state: "Calling", number: "+358449388834", callId: "ID1", started: "2016-02-16 13:26:21.183" }],
    );
  });

  test("every method, and every notification as a typed event", async () => {
    const c = await connected({ backend: "agent2" });
    try {
      assert.equal(c.state, "open");
      assert.equal(await c.getState(), "Available");
      assert.deepEqual(await c.getActiveCalls(), []);

      const callingOut = next(c, "CallingOut");
      const busy = next(c, "StateChanged");
      await c.callOut("+358 40 123 4567");
      const out = await callingOut;
      assert.equal(out.number, "+358401234567");
      assert.deepEqual(await busy, { state: "Busy" });
      const calls = await c.getActiveCalls();
      assert.equal(calls.length, 1);
      assert.deepEqual(
        { ...calls[0], started: typeof calls[0].started },
        { ordinal: 1, direction: "Outbound", state: "Calling", number: "+358401234567", callId: out.callId, started: "string" },
      );

      const connectedEv = next(c, "CallConnected");
      await c.sim.remoteAnswer(out.callId);
      assert.deepEqual(await connectedEv, { callId: out.callId });

      const coming = next(c, "CallComing");
      const id = await c.sim.incomingCall("0505010269");
      assert.deepEqual(await coming, { callId: id, number: "0505010269" });
      const answered = next(c, "CallConnected");
      await c.answer();
      assert.deepEqual(await answered, { callId: id });

      const ended = next(c, "CallDisconnected");
      await c.hangUp();
      assert.deepEqual(await ended, { callId: id, extraInfo: "local hang-up" });
      const ended2 = next(c, "CallDisconnected");
      await c.sim.remoteHangUp(out.callId, "busy");
      assert.deepEqual(await ended2, { callId: out.callId, extraInfo: "busy" });

      const queue = next(c, "QueueCallComing");
      const queueComing = next(c, "CallComing");
      const qid = await c.sim.queueCall("+358501231234", "+3581011223", "Master queue 1");
      const q = await queue;
      assert.equal(q.callId, qid);
      assert.equal(q.callerNumber, "+358501231234");
      assert.equal(q.queueNumber, "+3581011223");
      assert.equal(q.queueName, "Master queue 1");
      assert.equal((await queueComing).callId, qid);
      await c.hangUp();

      // The queue call's end returns the state to Available first.
      const states = collect(c, "StateChanged");
      await c.sim.setAvailability("Away");
      await states.until((e) => e.state === "Away");
      await c.sim.setOffline();
      assert.deepEqual(await states.until(() => true), { state: "Offline" });
      await c.sim.setOnline();
      assert.deepEqual(await states.until(() => true), { state: "Away" });
      await c.sim.setAvailability("Available");

      // Errors arrive as RpcError with the code.
      await assert.rejects(c.answer(), (e) => e instanceof RpcError && e.code === -32002);
      await assert.rejects(c.callOut("abc"), (e) => e instanceof RpcError && e.code === -32602);
      await assert.rejects(c.init("nope"), (e) => e instanceof RpcError && e.code === -32003 && Array.isArray(e.data));
      await c.init("sim");
      await c.init();
    } finally {
      c.close();
    }
  });

  test("request() with the documented methods' params, positional and named, and any other method", async () => {
    const c = await connected({ backend: "agent2" });
    try {
      assert.equal(await c.request("GetState"), "Available");
      assert.equal(await c.request("Init", { backend: "agent2" }), 0);
      const id = await c.request("Sim.IncomingCall", { number: "0505010269" });
      assert.equal(typeof id, "string");
      assert.deepEqual((await c.request("GetActiveCalls", [])).slice(1, 5), ["Inbound", "Ringing", "0505010269", id]);
      assert.equal(await c.request("HangUp"), 0);
      await assert.rejects(c.request("Vendor.Nothing", { x: 1 }), (e) => e instanceof RpcError && e.code === -32601);
      await assert.rejects(c.request("rpc.on", ["CallComing"]), (e) => e instanceof RpcError && e.code === -32601);
    } finally {
      c.close();
    }
    // A closed client sends nothing.
    await assert.rejects(c.request("GetState"), (e) => e instanceof ConnectionError && /not connected/.test(e.message));
  });

  test("call control: hold, resume, transfer, DTMF, mute, by call id, and the extension events", async () => {
    const c = await connected({ backend: "agent2" });
    try {
      await c.subscribe("CallHeld", "CallResumed", "CallTransferred", "MuteChanged");
      // Nothing fits without a call: -32002 with data [].
      await assert.rejects(c.hold(), (e) => e instanceof RpcError && e.code === -32002 && Array.isArray(e.data) && e.data.length === 0);

      const a = await c.sim.incomingCall("0501");
      await c.answer(a);
      const held = next(c, "CallHeld");
      await c.hold();
      assert.deepEqual(await held, { callId: a });
      assert.equal((await c.getActiveCalls())[0].state, "OnHold");
      const resumed = next(c, "CallResumed");
      await c.resume(a);
      assert.deepEqual(await resumed, { callId: a });
      assert.equal((await c.getActiveCalls())[0].state, "Connected");

      // A second call answered by id: the phone holds the first.
      const b = await c.sim.incomingCall("0502");
      const heldA = next(c, "CallHeld");
      await c.answer(b, { timeoutMs: 5000 });
      assert.deepEqual(await heldA, { callId: a });
      await c.hold(b);
      // Both held: Resume without an id is ambiguous, data lists both ids, oldest first.
      await assert.rejects(c.resume(), (e) => e instanceof RpcError && e.code === -32007 && JSON.stringify(e.data) === JSON.stringify([a, b]));
      await c.resume(b);
      await assert.rejects(c.hold("no-such-call"), (e) => e instanceof RpcError && e.code === -32002);

      await c.sendDtmf("12*#A", b);
      await c.sendDtmf("9");
      await assert.rejects(c.sendDtmf("12x"), (e) => e instanceof RpcError && e.code === -32602);

      const muted = collect(c, "MuteChanged");
      await c.mute();
      assert.deepEqual(await muted.until(() => true), { muted: true });
      await c.unmute();
      assert.deepEqual(await muted.until(() => true), { muted: false });

      const transferred = next(c, "CallTransferred");
      const gone = next(c, "CallDisconnected");
      await c.transfer("+358 40 765 4321");
      assert.deepEqual(await transferred, { callId: b, number: "+358407654321" });
      assert.deepEqual(await gone, { callId: b, extraInfo: "transferred" });
      // Not a number: by position the attended form, [callId, targetCallId], of a call that is not there.
      await assert.rejects(c.transfer("abc", a), (e) => e instanceof RpcError && e.code === -32002);
      await assert.rejects(c.transfer("abc"), (e) => e instanceof RpcError && e.code === -32602);

      // HangUp by id ends that call (the held one).
      const ended = next(c, "CallDisconnected");
      await c.hangUp(a);
      assert.deepEqual(await ended, { callId: a, extraInfo: "local hang-up" });
      assert.deepEqual(await c.getActiveCalls(), []);
      await assert.rejects(c.hangUp({ timeoutMs: 5000 }), (e) => e instanceof RpcError && e.code === -32002);

      // request() with the extension methods, positional and named.
      assert.equal(await c.request("Events.Subscribe", { names: ["CallHeld"] }), 0);
      await assert.rejects(c.request("Call.Hold", { callId: "x" }), (e) => e instanceof RpcError && e.code === -32002);
      await assert.rejects(c.request("Call.SendDtmf", ["1"]), (e) => e instanceof RpcError && e.code === -32002);
    } finally {
      c.close();
    }
  });

  test("a connection that did not subscribe gets no extension events", async () => {
    const c = await connected({ backend: "agent2" });
    try {
      const all = [];
      c.on("notification", (n) => all.push(n.method));
      const a = await c.sim.incomingCall("0503");
      await c.answer();
      await c.hold();
      await c.hangUp(a);
      await c.getState();
      assert.deepEqual(all, ["CallComing", "StateChanged", "CallConnected", "CallDisconnected", "StateChanged"]);
    } finally {
      c.close();
    }
  });

  test("a request times out when the server does not answer; per call: timeoutMs and an AbortSignal", async () => {
    const c = await connected({ requestTimeoutMs: 300 });
    try {
      await pause(server);
      let started = Date.now();
      await assert.rejects(c.getState(), (e) => e instanceof TimeoutError && /GetState within 300 ms/.test(e.message));
      assert.ok(Date.now() - started >= 250);

      // timeoutMs replaces requestTimeoutMs for one call.
      started = Date.now();
      await assert.rejects(c.request("GetState", [], { timeoutMs: 50 }), (e) => e instanceof TimeoutError && /within 50 ms/.test(e.message));
      assert.ok(Date.now() - started < 290, "the per-call timeout was used, not requestTimeoutMs");
      started = Date.now();
      await assert.rejects(c.getActiveCalls({ timeoutMs: 600 }), (e) => e instanceof TimeoutError);
      assert.ok(Date.now() - started >= 550, "the longer per-call timeout was used");
      await assert.rejects(c.request("GetState", [], { timeoutMs: 0 }), RangeError);

      // An abort stops waiting, with the signal's reason.
      const controller = new AbortController();
      const aborted = c.request("GetState", [], { signal: controller.signal, timeoutMs: Infinity });
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(aborted, (e) => e.name === "AbortError");
      await assert.rejects(c.getActiveCalls({ signal: AbortSignal.timeout(50) }), (e) => e.name === "TimeoutError" && !(e instanceof TimeoutError));
      const why = new Error("the user went away");
      await assert.rejects(c.request("GetState", [], { signal: AbortSignal.abort(why) }), (e) => e === why);
    } finally {
      resume(server);
    }
    try {
      // The server is fine afterwards, so is the connection: late replies are ignored.
      assert.equal(await c.getState(), "Available");
      assert.equal(c.state, "open");
    } finally {
      c.close();
    }
  });

  test("9: with reconnect false and no server, connect() rejects with ConnectionError", { timeout: 10000 }, async () => {
    const url = `ws://127.0.0.1:${await freePort()}`;
    const c = client({ url, reconnect: false });
    const events = record(c);
    await assert.rejects(c.connect(), (e) => e instanceof ConnectionError && e.message.includes(url));
    assert.equal(c.state, "closed");
    assert.deepEqual(events.states, ["connecting 0", "closed 0"]);
    assert.ok(events.seen[1].error.includes(url), events.seen[1].error);
    // Again: connect() tries anew, and rejects again.
    await assert.rejects(c.connect(), ConnectionError);
    assert.deepEqual(events.states, ["connecting 0", "closed 0", "connecting 0", "closed 0"]);
  });

  test("9: a URL the WebSocket refuses rejects connect() at once, without retrying", { timeout: 10000 }, async () => {
    const c = client({ url: "not a url", minBackoffMs: 10 });
    const events = record(c);
    await assert.rejects(c.connect(), (e) => e instanceof ConnectionError && /cannot connect to not a url/.test(e.message));
    await sleep(100);
    assert.deepEqual(events.states, ["connecting 0", "closed 0"]);
    assert.match(events.seen[1].error, /cannot connect to not a url/);
  });

  test("9: close() while connecting rejects connect(), during the handshake and during the backoff", { timeout: 10000 }, async () => {
    const hole = await blackHole();
    try {
      const c = client({ url: hole.url });
      const events = record(c);
      const connecting = c.connect();
      const again = c.connect(); // a second caller waits for the same connection
      await hole.accepted();
      c.close();
      await assert.rejects(connecting, (e) => e instanceof ConnectionError && /close\(\) was called/.test(e.message));
      await assert.rejects(again, ConnectionError);
      assert.deepEqual(events.states, ["connecting 0", "closed 0"]);
    } finally {
      await hole.close();
    }

    const url = `ws://127.0.0.1:${await freePort()}`;
    const c = client({ url, minBackoffMs: 60000, maxBackoffMs: 60000 });
    const events = record(c);
    const connecting = c.connect();
    while (c.state !== "reconnecting") await next(c, "connection");
    c.close();
    await assert.rejects(connecting, ConnectionError);
    assert.deepEqual(events.states, ["connecting 0", "reconnecting 1", "closed 1"]);
  });

  test("10: a refused connection ends the attempt: the client retries, attempt after attempt", { timeout: 10000 }, async () => {
    const url = `ws://127.0.0.1:${await freePort()}`;
    const c = client({ url, minBackoffMs: 20, maxBackoffMs: 40 });
    const events = record(c);
    const connecting = c.connect();
    while (!events.seen.some((e) => e.attempt >= 4)) await next(c, "connection");
    c.close();
    await assert.rejects(connecting, ConnectionError);
    assert.deepEqual(events.states, ["connecting 0", "reconnecting 1", "reconnecting 2", "reconnecting 3", "reconnecting 4", "closed 4"]);
    for (const e of events.seen.slice(1, 5)) assert.match(e.error, /failed|closed/);
  });

  test("10: every attempt has a connect timeout", { timeout: 10000 }, async () => {
    const hole = await blackHole();
    try {
      // Without reconnect, connect() rejects when the handshake does not finish in time.
      const c = client({ url: hole.url, reconnect: false, connectTimeoutMs: 300 });
      const started = Date.now();
      await assert.rejects(c.connect(), (e) => e instanceof ConnectionError && /within 300 ms/.test(e.message));
      assert.ok(Date.now() - started >= 250);
      assert.equal(c.state, "closed");

      // With reconnect, each timed-out attempt is followed by another.
      const d = client({ url: hole.url, connectTimeoutMs: 200, minBackoffMs: 10, maxBackoffMs: 20 });
      const events = record(d);
      const connecting = d.connect();
      while (!events.seen.some((e) => e.attempt >= 2)) await next(d, "connection");
      d.close();
      await assert.rejects(connecting, ConnectionError);
      assert.deepEqual(events.states, ["connecting 0", "reconnecting 1", "reconnecting 2", "closed 2"]);
      assert.match(events.seen[1].error, /no connection to .* within 200 ms/);
      assert.ok(hole.connections >= 3, `${hole.connections} connections`);
    } finally {
      await hole.close();
    }
  });

  test("11: a keep-alive without reply closes the connection and reconnects", { timeout: 20000 }, async () => {
    const port = await freePort();
    const args = ["--extra-backend", "agent2=sim"];
    const s = await startServer(args, port);
    const c = client({
      url: s.url, backend: "agent2", keepAliveMs: 200, requestTimeoutMs: 400,
      connectTimeoutMs: 500, minBackoffMs: 50, maxBackoffMs: 200,
    });
    const events = record(c);
    try {
      await c.connect();
      await sleep(500); // keep-alives that are answered change nothing
      assert.deepEqual(events.states, ["connecting 0", "open 0"]);

      // The server stops answering, as after a laptop's sleep: the socket still looks open.
      await pause(s);
      const dropped = await next(c, "connection", 5000);
      assert.equal(dropped.state, "reconnecting");
      assert.match(dropped.error, /keep-alive: no reply to GetState within 400 ms/);
      resume(s);
      while (c.state !== "open") await next(c, "connection", 10000);
      assert.equal(await c.getState(), "Available");

      // Re-Init applied on the new connection: agent2's changes are seen.
      const other = await raw(s.url, impl);
      await other.call("Init", ["agent2"]);
      const seen = next(c, "StateChanged");
      await other.call("Sim.SetAvailability", ["Away"]);
      assert.deepEqual(await seen, { state: "Away" });
      other.close();
      const states = events.states;
      assert.deepEqual(states.slice(0, 3), ["connecting 0", "open 0", "reconnecting 1"]);
      assert.equal(states.at(-1), "open 0");
      assert.equal(states.filter((x) => x.startsWith("open")).length, 2, states.join(", "));
    } finally {
      resume(s);
      c.close();
      await s.stop();
    }
  });

  test("13: a refused Init rejects connect() with the server's RpcError; open is never emitted", { timeout: 10000 }, async () => {
    const c = client({ url: server.url, backend: "nope" });
    const events = record(c);
    await assert.rejects(c.connect(), (e) => {
      assert.ok(e instanceof RpcError, String(e));
      assert.equal(e.code, -32003);
      assert.ok(Array.isArray(e.data) && e.data.includes("sim") && e.data.includes("agent2"), JSON.stringify(e.data));
      assert.match(e.message, /nope/);
      return true;
    });
    assert.equal(c.state, "closed");
    await sleep(300); // no retry follows: retrying cannot fix the configuration
    assert.deepEqual(events.states, ["connecting 0", "closed 0"]);
    assert.match(events.seen[1].error, /Init nope/);
  });

  test("13: each connection event once per change, through a server restart", { timeout: 20000 }, async () => {
    const port = await freePort();
    const args = ["--extra-backend", "agent2=sim"];
    let s = await startServer(args, port);
    const c = client({ url: s.url, minBackoffMs: 50, maxBackoffMs: 100 });
    const events = record(c);
    try {
      const first = c.connect();
      const second = c.connect();
      await Promise.all([first, second]);
      await c.connect(); // resolves at once when open
      assert.deepEqual(events.states, ["connecting 0", "open 0"]);

      await s.stop();
      while (!events.seen.some((e) => e.attempt >= 3)) await next(c, "connection", 5000);
      s = await startServer(args, port);
      while (c.state !== "open") await next(c, "connection", 10000);
      c.close();
      c.close(); // closing twice changes nothing
      const states = events.states;
      const n = states.length - 4; // connecting, open, …reconnecting 1..n…, open, closed
      assert.ok(n >= 3, states.join(", "));
      assert.deepEqual(states, [
        "connecting 0", "open 0",
        ...Array.from({ length: n }, (_, i) => `reconnecting ${i + 1}`),
        "open 0", "closed 0",
      ]);
      assert.match(events.seen[2].error, /closed \(1001: server shutting down\)/);
    } finally {
      c.close();
      await s.stop();
    }
  });

  test("a connection listener may close the client: nothing goes on after it", { timeout: 10000 }, async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = timers();
    // On reconnecting: no further attempt.
    const dead = client({ url: `ws://127.0.0.1:${await freePort()}`, minBackoffMs: 10, maxBackoffMs: 10 });
    const deadEvents = record(dead);
    dead.on("connection", (e) => { if (e.state === "reconnecting") dead.close(); });
    await assert.rejects(dead.connect(), ConnectionError);
    // On open: connect() rejects, and no keep-alive is left running.
    const live = client({ url: server.url, keepAliveMs: 20 });
    const liveEvents = record(live);
    live.on("connection", (e) => { if (e.state === "open") live.close(); });
    await assert.rejects(live.connect(), ConnectionError);
    await sleep(200);
    assert.deepEqual(deadEvents.states, ["connecting 0", "reconnecting 1", "closed 1"]);
    assert.deepEqual(liveEvents.states, ["connecting 0", "open 0", "closed 0"]);
    assert.equal(timers(), before, "no timer of the closed clients is left");
  });

  test("the client reconnects and re-Inits by itself after a server restart", async () => {
    const port = await freePort();
    const args = ["--extra-backend", "agent2=sim"];
    let s = await startServer(args, port);
    const c = client({ url: s.url, minBackoffMs: 100, maxBackoffMs: 400 });
    const states = [];
    c.on("connection", (e) => states.push(e.state));
    try {
      await c.connect();
      await c.init("agent2");
      const reconnecting = next(c, "connection");
      await s.stop();
      assert.equal((await reconnecting).state, "reconnecting");
      s = await startServer(args, port);
      // Open again without any call from us.
      while (c.state !== "open") await next(c, "connection", 10000);
      // Re-Init applied: a change on the default phone is not seen, one on agent2 is.
      const other = await raw(s.url, impl);
      await other.call("Sim.SetAvailability", ["DND"]);
      await other.call("Init", ["agent2"]);
      const seen = next(c, "StateChanged");
      await other.call("Sim.SetAvailability", ["Away"]);
      assert.deepEqual(await seen, { state: "Away" });
      assert.equal(await c.getState(), "Away");
      other.close();
      assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join(","));
    } finally {
      c.close();
      await s.stop();
    }
  });

  test("the client subscribes again by itself after a server restart", async () => {
    const port = await freePort();
    const args = ["--sim-auto-answer", "false"];
    let s = await startServer(args, port);
    const c = client({ url: s.url, minBackoffMs: 100, maxBackoffMs: 400 });
    try {
      await c.connect();
      await c.subscribe("CallHeld");
      await c.subscribe("MuteChanged");
      const reconnecting = next(c, "connection");
      await s.stop();
      assert.equal((await reconnecting).state, "reconnecting");
      s = await startServer(args, port);
      while (c.state !== "open") await next(c, "connection", 10000);
      // Both subscriptions were applied again on the new connection.
      const other = await raw(s.url, impl);
      const id = (await other.call("Sim.IncomingCall", ["0504"])).result;
      await other.call("Answer", [id]);
      const held = next(c, "CallHeld");
      await other.call("Call.Hold", [id]);
      assert.deepEqual(await held, { callId: id });
      const muted = next(c, "MuteChanged");
      await other.call("Call.Mute", []);
      assert.deepEqual(await muted, { muted: true });
      other.close();
    } finally {
      c.close();
      await s.stop();
    }
  });
}

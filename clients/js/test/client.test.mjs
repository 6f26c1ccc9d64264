// The client against the real server: every method, every notification, timeouts,
// reconnecting and re-Init after a server restart.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BapiwsClient, RpcError, TimeoutError, parseActiveCalls } from "../dist/index.js";
import { startServer, next, raw, freePort, collect } from "./server.mjs";

let server;
before(async () => { server = await startServer(["--sim-auto-answer", "false", "--extra-backend", "agent2=sim"]); });
after(async () => { await server.stop(); });

async function connected(options = {}) {
  const c = new BapiwsClient({ url: server.url, keepAliveMs: 0, ...options });
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

test("a request times out when the server does not answer", async () => {
  const c = await connected({ requestTimeoutMs: 300 });
  try {
    server.child.kill("SIGSTOP");
    // Wait until the kernel has really stopped it (state T in /proc).
    for (let i = 0; i < 200; i++) {
      const stat = readFileSync(`/proc/${server.child.pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) break;
      await new Promise((ok) => setTimeout(ok, 10));
    }
    const started = Date.now();
    await assert.rejects(c.getState(), (e) => e instanceof TimeoutError);
    assert.ok(Date.now() - started >= 250);
  } finally {
    server.child.kill("SIGCONT");
    c.close();
  }
  // The server is fine afterwards.
  const d = await connected();
  assert.equal(await d.getState(), "Available");
  d.close();
});

test("the client reconnects and re-Inits by itself after a server restart", async () => {
  const port = await freePort();
  const args = ["--extra-backend", "agent2=sim"];
  let s = await startServer(args, port);
  const c = new BapiwsClient({ url: s.url, keepAliveMs: 0, minBackoffMs: 100, maxBackoffMs: 400 });
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
    const other = await raw(s.url);
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

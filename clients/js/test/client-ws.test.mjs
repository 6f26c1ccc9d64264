// The client with the `ws` package's WebSocket class, passed as its option, in a Node
// without a global WebSocket. The tests are in client-suite.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { BapiwsClient } from "../dist/index.js";
import { clientSuite } from "./client-suite.mjs";
import { startServer } from "./server.mjs";

assert.equal(globalThis.WebSocket, undefined, "run without --experimental-websocket: this file tests Node without a global WebSocket");

test("without a global WebSocket, the client asks for one", () => {
  assert.throws(() => new BapiwsClient(), (e) => {
    assert.match(e.message, /^no WebSocket implementation/);
    // It says what to do in Node 20: pass `ws`'s WebSocket class as the option.
    assert.ok(e.message.includes('import WebSocket from "ws"'), e.message);
    assert.ok(e.message.includes("new BapiwsClient({ WebSocket })"), e.message);
    return true;
  });
});

// Browsers (and undici) drop messages that arrive after close() was called; ws delivers
// them, so it shows that the server replies to a request sent just before the client's
// close frame, and only then answers the close.
test("send(request) then close(): the reply comes before the close", async () => {
  const server = await startServer();
  try {
    for (const code of [1000, undefined]) {
      const ws = new WebSocket(server.url);
      await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
      const seen = [];
      ws.onmessage = (e) => seen.push(JSON.parse(String(e.data)));
      const closed = new Promise((ok) => { ws.onclose = (e) => ok({ code: e.code, wasClean: e.wasClean }); });
      ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "GetState", params: [] }));
      ws.close(code);
      assert.deepEqual(await closed, { code: code ?? 1005, wasClean: true });
      assert.deepEqual(seen, [{ jsonrpc: "2.0", result: "Available", id: 1 }]);
    }
  } finally {
    await server.stop();
  }
});

clientSuite({ WebSocket });

// The client with Node 20's global WebSocket (undici; `node --experimental-websocket`),
// which the client finds by itself. The tests are in client-suite.mjs.
import assert from "node:assert/strict";
import { clientSuite } from "./client-suite.mjs";

assert.equal(typeof globalThis.WebSocket, "function", "run with node --experimental-websocket (Node 20)");
clientSuite({ WebSocket: undefined });

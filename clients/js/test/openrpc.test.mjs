// The OpenRPC document (rpc.discover, GET /openrpc.json) against the OpenRPC meta-schema
// of its published package, @open-rpc/meta-schema, with ajv.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { startServer, raw } from "./server.mjs";

const require = createRequire(import.meta.url);
const metaSchema = require("@open-rpc/meta-schema").default;
// The OpenRPC meta-schema refers to the JSON Schema meta-schema by its $id: that
// package's copy is given to ajv, so nothing is fetched.
const jsonSchemaMeta = require("@json-schema-tools/meta-schema").default;
const Ajv = require("ajv").default;

function validator() {
  // Both schemas name their own URL as $schema; ajv validates against them as draft-07.
  const strip = (s) => { const c = structuredClone(s); delete c.$schema; return c; };
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  ajv.addSchema(strip(jsonSchemaMeta));
  // Referred to both with and without the trailing slash of its $id.
  const bare = strip(jsonSchemaMeta);
  delete bare.$id;
  ajv.addSchema(bare, "https://meta.json-schema.tools");
  return ajv.compile(strip(metaSchema));
}

test("rpc.discover and /openrpc.json validate against the OpenRPC meta-schema", async () => {
  const server = await startServer();
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/openrpc.json`);
    assert.equal(res.status, 200);
    const served = await res.json();
    const c = await raw(server.url);
    const reply = await c.call("rpc.discover", []);
    c.close();
    const doc = reply.result;
    assert.deepEqual(served, doc, "the route and the method serve one document");
    const validate = validator();
    assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
    const names = doc.methods.map((m) => m.name);
    for (const m of ["Init", "GetState", "CallOut", "HangUp", "Answer", "GetActiveCalls",
      "Call.Hold", "Call.Resume", "Call.Transfer", "Call.SendDtmf", "Call.Mute", "Call.Unmute",
      "Events.Subscribe", "rpc.discover"]) {
      assert.ok(names.includes(m), `${m} in the document`);
    }
  } finally {
    await server.stop();
  }
});

test("the validator rejects a document that breaks the meta-schema", () => {
  const validate = validator();
  assert.equal(validate({ openrpc: "1.3.2", info: { title: "x", version: "1" },
    methods: [{ name: "M", params: [{ name: "p" }] }] }), false);
  assert.equal(validate({ openrpc: "1.3.2", info: { title: "x", version: "1" }, methods: [] }), true);
});

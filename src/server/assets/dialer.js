// The dialer page: a thin view over bapiws-client. Served by bapiws at /dialer.js.
import { BapiwsClient } from "./bapiws-client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const url = params.get("server") || `ws://${location.host}`;
const client = new BapiwsClient({ url });
let backends = [];
let current = null;

function show(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

function time() {
  return new Date().toLocaleTimeString(undefined, { hour12: false }) +
    "." + String(new Date().getMilliseconds()).padStart(3, "0");
}

function log(method, params) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = time();
  const m = document.createElement("span");
  m.className = "m";
  m.textContent = method;
  li.append(t, m, document.createTextNode(Array.isArray(params) ? params.join("  ") : ""));
  $("log").prepend(li);
  $("no-events").hidden = true;
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

function setPill(id, text) {
  const el = $(id);
  el.textContent = text;
  el.className = `pill ${text}`;
}

async function refreshCalls() {
  let calls = [];
  try {
    calls = await client.getActiveCalls();
  } catch {
    return;
  }
  const body = $("calls").tBodies[0];
  body.replaceChildren(...calls.map((c) => {
    const tr = document.createElement("tr");
    for (const [v, cls] of [[c.ordinal], [c.direction], [c.state], [c.number], [c.started], [c.callId, "id"]]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.dataset.callId = c.callId;
    return tr;
  }));
  $("no-calls").hidden = calls.length > 0;
}

async function refreshState() {
  try {
    setPill("phone-state", await client.getState());
  } catch {
    setPill("phone-state", "—");
  }
}

// Runs an action, showing the server's refusal instead of failing silently.
async function act(fn) {
  try {
    show("");
    await fn();
  } catch (e) {
    show(e && e.message ? e.message : String(e));
  }
}

function kindOf(name) {
  const b = backends.find((x) => x.name === name);
  return b ? b.kind : null;
}

async function loadBackends() {
  try {
    const health = await (await fetch(new URL("/health", url.replace(/^ws/, "http")))).json();
    backends = health.backends || [];
    const names = backends.map((b) => b.name).concat(Object.keys(health.aliases || {}));
    const select = $("backend");
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    current = current || health.default_backend;
    select.value = current;
    const aliasTarget = (health.aliases || {})[current];
    $("sim").hidden = kindOf(aliasTarget || current) !== "sim";
  } catch {
    // /health unreachable: the connection status says why.
  }
}

client.on("connection", (e) => {
  setPill("connection", e.state);
  if (e.state === "open") {
    show("");
    loadBackends();
    refreshState();
    refreshCalls();
  } else if (e.state === "reconnecting" && e.attempt >= 1) {
    show(`Cannot connect to bapiws at ${url}: it is not running, or it does not allow ` +
      `this page's origin (${location.origin}). Retrying…`);
    setPill("phone-state", "—");
  }
});

client.on("notification", (n) => {
  log(n.method, n.params);
  if (n.method === "StateChanged") setPill("phone-state", String(n.params[0]));
  else refreshCalls();
});

$("dial-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act(() => client.callOut($("number").value));
});
$("answer").addEventListener("click", () => act(() => client.answer()));
$("hangup").addEventListener("click", () => act(() => client.hangUp()));
$("backend").addEventListener("change", (e) => act(async () => {
  current = e.target.value;
  await client.init(current);
  await loadBackends();
  await refreshState();
  await refreshCalls();
}));
document.addEventListener("keydown", (e) => {
  if (e.altKey && e.key.toLowerCase() === "a") { e.preventDefault(); act(() => client.answer()); }
  if (e.altKey && e.key.toLowerCase() === "h") { e.preventDefault(); act(() => client.hangUp()); }
});

const simNumber = () => $("sim-number").value;
$("sim-incoming").addEventListener("click", () => act(() => client.sim.incomingCall(simNumber())));
$("sim-queue").addEventListener("click", () => act(() => client.sim.queueCall(simNumber(), "+3581011223", "Support queue")));
$("sim-remote-answer").addEventListener("click", () => act(() => client.sim.remoteAnswer()));
$("sim-remote-hangup").addEventListener("click", () => act(() => client.sim.remoteHangUp()));
$("sim-availability").addEventListener("change", (e) => act(() => client.sim.setAvailability(e.target.value)));
$("sim-offline").addEventListener("click", () => act(() => client.sim.setOffline()));
$("sim-online").addEventListener("click", () => act(() => client.sim.setOnline()));

client.connect();

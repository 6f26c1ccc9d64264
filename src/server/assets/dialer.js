// The dialer page: a thin view over bapiws-client. Served by bapiws at /dialer.js.
import { BapiwsClient } from "./bapiws-client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const url = params.get("server") || `ws://${location.host}`;
const client = new BapiwsClient({ url });
let backends = [];
let current = null;
/** The active calls, as last listed. */
let calls = [];
/** When this page saw each call become connected (ms since the epoch), for the timers. */
const connectedAt = new Map();
let muted = false;
/** The call the transfer form is open for. */
let transferring = null;

/** Shows a message (the server's and the client's errors start lower case: capitalised here). */
function show(text) {
  const box = $("message");
  const t = String(text || "");
  box.textContent = t.charAt(0).toUpperCase() + t.slice(1);
  box.hidden = !t;
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
  if (id === "phone-state") {
    phoneState = text;
    updateButtons();
  }
}

/** `m:ss` (or `h:mm:ss`) since `since`. */
function elapsed(since) {
  const s = Math.max(0, Math.floor((Date.now() - since) / 1000));
  const mm = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** The `started` field (`yyyy-MM-dd HH:mm:ss.fff`, local time) as ms since the epoch. */
function startedMs(started) {
  const t = Date.parse(String(started).replace(" ", "T"));
  return Number.isFinite(t) ? t : Date.now();
}

/** The buttons of one call's row: [label, action]. */
function actionsOf(c) {
  if (c.state === "Ringing" && c.direction === "Inbound") return [["Answer", "answer"], ["Reject", "hangup"]];
  if (c.state === "Connected" || c.state === "HeldByFarEnd") return [["Hold", "hold"], ["Transfer…", "transfer"], ["Hang up", "hangup"]];
  if (c.state === "OnHold") return [["Resume", "resume"], ["Hang up", "hangup"]];
  return [["Hang up", "hangup"]];
}

async function refreshCalls() {
  try {
    calls = await client.getActiveCalls();
  } catch {
    return;
  }
  for (const c of calls) {
    if (["Connected", "OnHold", "HeldByFarEnd"].includes(c.state) && !connectedAt.has(c.callId)) {
      // Connected before this page saw it: count from the call's start.
      connectedAt.set(c.callId, startedMs(c.started));
    }
  }
  for (const id of [...connectedAt.keys()]) {
    if (!calls.some((c) => c.callId === id)) connectedAt.delete(id);
  }
  const body = $("calls").tBodies[0];
  body.replaceChildren(...calls.map((c) => {
    const tr = document.createElement("tr");
    const cell = document.createElement("td");
    cell.className = "actions";
    for (const [label, action] of actionsOf(c)) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.dataset.action = action;
      if (action === "hangup") b.className = "danger";
      cell.append(b);
    }
    const td = (v, cls) => {
      const el = document.createElement("td");
      el.textContent = String(v);
      if (cls) el.className = cls;
      return el;
    };
    // Started: the time of day (the date too when it is not today); the whole in its title.
    const [day, clock] = String(c.started).split(" ");
    const today = new Date().toLocaleDateString("sv");
    const started = td(clock && day === today ? clock.replace(/\.\d+$/, "") : c.started);
    started.title = String(c.started);
    tr.append(td(c.ordinal), td(c.direction), td(c.state), td(c.number), td("", "time"), cell,
      started, td(c.callId, "id"));
    tr.dataset.callId = c.callId;
    return tr;
  }));
  $("no-calls").hidden = calls.length > 0;
  if (transferring && !calls.some((c) => c.callId === transferring && c.state === "Connected")) {
    closeTransfer();
  }
  const ringing = calls.filter((c) => c.state === "Ringing" && c.direction === "Inbound").at(-1);
  $("incoming").hidden = !ringing;
  if (ringing) {
    $("incoming").dataset.callId = ringing.callId;
    $("incoming-number").textContent = ringing.number;
  }
  $("in-call").hidden = !connectedCall();
  if (calls.length === 0) setMuted(false);
  updateButtons();
  tick();
}

/** The phone's state as last seen ("—" when unknown). */
let phoneState = "—";
let connected = false;

/** Enables the page's buttons that apply to the calls and the phone as last listed. */
function updateButtons() {
  const ringing = calls.some((c) => c.state === "Ringing" && c.direction === "Inbound");
  const calling = calls.some((c) => c.state === "Calling" && c.direction === "Outbound");
  $("call").disabled = !connected;
  $("answer").disabled = !connected || !ringing;
  $("hangup").disabled = !connected || calls.length === 0;
  $("sim-remote-answer").disabled = !connected || !calling;
  $("sim-remote-hangup").disabled = !connected || calls.length === 0;
  $("sim-offline").disabled = !connected || phoneState === "Offline";
  $("sim-online").disabled = !connected || phoneState !== "Offline";
}

/** The connected call, if exactly one is. */
function connectedCall() {
  const connected = calls.filter((c) => c.state === "Connected");
  return connected.length === 1 ? connected[0] : null;
}

/** Updates the timers: the connected call's, and each row's. */
function tick() {
  const c = connectedCall();
  if (c && connectedAt.has(c.callId)) $("timer").textContent = elapsed(connectedAt.get(c.callId));
  for (const tr of $("calls").tBodies[0].rows) {
    const since = connectedAt.get(tr.dataset.callId);
    tr.querySelector("td.time").textContent = since === undefined ? "" : elapsed(since);
  }
}

function setMuted(on) {
  muted = on;
  $("mute").textContent = on ? "Unmute" : "Mute";
  $("mute").setAttribute("aria-pressed", String(on));
}

function openTransfer(callId) {
  transferring = callId;
  $("transfer-call").textContent = callId;
  $("transfer-form").hidden = false;
  $("transfer-number").focus();
}

function closeTransfer() {
  transferring = null;
  $("transfer-form").hidden = true;
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
    // The server puts the cause of an unreachable phone (-32001) in data.lastError.
    const cause = e && e.data && typeof e.data.lastError === "string" ? `: ${e.data.lastError}` : "";
    show(e && e.message ? e.message + cause : String(e));
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
    // The backends this server has, and the aliases of those (an alias of a backend that
    // is not configured is not offered).
    const aliases = Object.entries(health.aliases || {})
      .filter(([, target]) => backends.some((b) => b.name === target))
      .map(([alias]) => alias);
    const names = backends.map((b) => b.name).concat(aliases);
    const select = $("backend");
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    current = current || health.default_backend;
    select.value = current;
    const aliasTarget = (health.aliases || {})[current];
    $("sim").hidden = kindOf(aliasTarget || current) !== "sim";
    // A backend that is offline says why, when the server knows (baresip not installed…).
    const chosen = backends.find((b) => b.name === (aliasTarget || current));
    if (chosen && chosen.state === "Offline" && chosen.last_error) {
      show(`The ${chosen.name} backend is offline: ${chosen.last_error}`);
    }
  } catch {
    // /health unreachable: the connection status says why.
  }
}

client.on("connection", (e) => {
  setPill("connection", e.state);
  connected = e.state === "open";
  updateButtons();
  if (e.state === "open") {
    show("");
    loadBackends();
    refreshState();
    refreshCalls();
  } else if (e.cause === "permission-needed") {
    show("Your browser asks whether this page may connect to bapiws on this computer: choose Allow.");
  } else if (e.state !== "connecting") {
    if (e.state === "reconnecting" && e.attempt < 1) return;
    show(cannotConnect(e.cause));
    setPill("phone-state", "—");
  }
});

/** What the user can do, for each cause the client reports (see docs/integrating.md). */
function cannotConnect(cause) {
  switch (cause) {
    case "permission-denied":
      return window.isSecureContext
        ? `The browser does not let this page (${location.origin}) reach bapiws on this computer. ` +
          "Allow it in the site's settings (the icon left of the address), or ask your administrator."
        : `This page is plain http:// (${location.origin}): the browser lets only https:// pages reach this computer.`;
    case "frame-not-allowed":
      return "This page is inside a frame that may not reach this computer: the page around it must " +
        'add allow="loopback-network" to its iframe.';
    case "unreachable":
      return `bapiws is not running at ${url} (or listens on another port). Retrying…`;
    case "origin-refused":
      return `bapiws at ${url} does not allow this page's origin (${location.origin}): ` +
        "add it to allowed_origins. Retrying…";
    case "mixed-content":
      return `This browser does not let an https:// page open ${url} (mixed content).`;
    default:
      return `Cannot connect to bapiws at ${url}. Retrying…`;
  }
}

client.on("notification", (n) => {
  log(n.method, n.params);
  if (n.method === "StateChanged") setPill("phone-state", String(n.params[0]));
  else if (n.method !== "MuteChanged") refreshCalls();
});
client.on("CallConnected", ({ callId }) => connectedAt.set(callId, Date.now()));
client.on("MuteChanged", ({ muted: on }) => setMuted(on));

$("calls").tBodies[0].addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b) return;
  const id = b.closest("tr").dataset.callId;
  const run = {
    answer: () => client.answer(id),
    hangup: () => client.hangUp(id),
    hold: () => client.hold(id),
    resume: () => client.resume(id),
    transfer: async () => openTransfer(id),
  }[b.dataset.action];
  if (run) act(run);
});
$("transfer-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = transferring;
  act(async () => {
    await client.transfer($("transfer-number").value, id);
    closeTransfer();
  });
});
$("transfer-cancel").addEventListener("click", closeTransfer);
$("incoming-answer").addEventListener("click", () => act(() => client.answer($("incoming").dataset.callId)));
$("incoming-reject").addEventListener("click", () => act(() => client.hangUp($("incoming").dataset.callId)));
$("mute").addEventListener("click", () => act(() => (muted ? client.unmute() : client.mute())));
for (const key of ["1", "2", "3", "A", "4", "5", "6", "B", "7", "8", "9", "C", "*", "0", "#", "D"]) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = key;
  b.dataset.digit = key;
  b.addEventListener("click", () => act(async () => {
    const c = connectedCall();
    if (!c) throw new Error("No connected call");
    await client.sendDtmf(key, c.callId);
    log("DTMF sent", [key, c.callId]);
  }));
  $("keypad").append(b);
}
setInterval(tick, 1000);
updateButtons();

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
// The shortcuts do what their buttons do, when the buttons apply.
document.addEventListener("keydown", (e) => {
  const button = e.altKey && { a: $("answer"), h: $("hangup") }[e.key.toLowerCase()];
  if (!button) return;
  e.preventDefault();
  if (!button.disabled) button.click();
});

const simNumber = () => $("sim-number").value;
$("sim-incoming").addEventListener("click", () => act(() => client.sim.incomingCall(simNumber())));
$("sim-queue").addEventListener("click", () => act(() => client.sim.queueCall(simNumber(), "+3581011223", "Support queue")));
$("sim-remote-answer").addEventListener("click", () => act(() => client.sim.remoteAnswer()));
$("sim-remote-hangup").addEventListener("click", () => act(() => client.sim.remoteHangUp()));
$("sim-availability").addEventListener("change", (e) => act(() => client.sim.setAvailability(e.target.value)));
$("sim-offline").addEventListener("click", () => act(() => client.sim.setOffline()));
$("sim-online").addEventListener("click", () => act(() => client.sim.setOnline()));

// The extension events (held, resumed, transferred, mute); the client subscribes again
// after every reconnect. A server without them answers -32601: the page works without.
client.connect().then(
  () => client.subscribe("CallHeld", "CallResumed", "CallTransferred", "MuteChanged", "CallHeldByFarEnd", "CallResumedByFarEnd").catch(() => {}),
  () => {},
);

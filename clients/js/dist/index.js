/**
 * bapiws-client: drive the phone on the user's workstation from a web page (or Node),
 * through a bapiws / EnreachClientAPI server, over WebSocket JSON-RPC 2.0.
 *
 * It handles what every integration needs: matching replies to requests, a timeout per
 * request, a timeout per connection attempt, keep-alive that notices a dead connection,
 * reconnecting with backoff and jitter, and re-applying Init after a reconnect. When a
 * connection attempt fails, it tells why where it can (the browser's Local Network Access
 * permission, nothing listening, a refused origin, mixed content: {@link ConnectionCause}).
 * No runtime dependencies.
 */
/**
 * The cause of a failed connection attempt, from what the client found out; undefined
 * when it cannot tell. The client uses it for its `connection` events and its
 * {@link ConnectionError}s; exported so that pages (and tests) can see the rules.
 */
export function connectionCause(facts) {
    const insecureSocket = facts.pageProtocol === "https:" && facts.urlProtocol === "ws:";
    if (insecureSocket && (facts.thrown === "SecurityError" || facts.webkit === true)) {
        return "mixed-content";
    }
    if (facts.frameAllowed === false && facts.permission !== "granted")
        return "frame-not-allowed";
    if (facts.permission === "denied")
        return "permission-denied";
    if (facts.permission === "prompt" && facts.prompted === true)
        return "permission-needed";
    if (facts.probe === "refused")
        return "origin-refused";
    if (facts.probe === "none")
        return "unreachable";
    return undefined;
}
/** What each cause means, added to the error text of a failed attempt. */
const CAUSE_TEXT = {
    "permission-needed": "the browser is waiting for the user to allow this site to reach the computer",
    "permission-denied": "the browser does not let this site reach the computer (Local Network Access blocked)",
    "frame-not-allowed": 'this page is in an iframe without allow="loopback-network"',
    unreachable: "nothing answers there: bapiws is not running",
    "origin-refused": "the server does not allow this page's origin (allowed_origins)",
    "mixed-content": "the browser blocks ws:// from an https:// page (mixed content)",
};
/** The server answered with a JSON-RPC error. */
export class RpcError extends Error {
    constructor(code, message, data) {
        super(message);
        this.name = "RpcError";
        this.code = code;
        this.data = data;
    }
}
/** No reply came within the request timeout. */
export class TimeoutError extends Error {
    constructor(method, ms) {
        super(`no reply to ${method} within ${ms} ms`);
        this.name = "TimeoutError";
    }
}
/** Not connected, the connection closed before the reply came, or connecting failed. */
export class ConnectionError extends Error {
    constructor(message, cause) {
        super(message);
        this.name = "ConnectionError";
        if (cause !== undefined)
            this.cause = cause;
    }
}
const OPEN = 1;
/** How long the /health probe after a failed attempt may take. */
const PROBE_MS = 3000;
/** setTimeout's longest delay; longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Turns GetActiveCalls' flat result into call objects. */
export function parseActiveCalls(result) {
    if (!Array.isArray(result))
        return [];
    const calls = [];
    for (let i = 0; i + 6 <= result.length; i += 6) {
        const f = result.slice(i, i + 6).map(String);
        calls.push({
            ordinal: Number(f[0]),
            direction: f[1],
            state: f[2],
            number: f[3],
            callId: f[4],
            started: f[5],
        });
    }
    return calls;
}
function messageOf(e) {
    return e instanceof Error ? e.message : String(e);
}
/**
 * The Local Network Access permission that guards the server's address: `loopback-network`
 * for a loopback address or name, `local-network` for a private one, null for any other.
 * (Never the old name `local-network-access`: querying it crashes older Chrome renderers.)
 */
function permissionNameFor(url) {
    let host;
    try {
        host = new URL(url).hostname.toLowerCase();
    }
    catch {
        return null;
    }
    if (/^127\./.test(host) || host === "localhost" || host.endsWith(".localhost") || host === "[::1]") {
        return "loopback-network";
    }
    if (/^(10|192\.168|169\.254)\./.test(host) ||
        /^172\.(1[6-9]|2\d|3[01])\./.test(host) ||
        /^\[f[cd]/.test(host) ||
        /^\[fe[89ab]/.test(host)) {
        return "local-network";
    }
    return null;
}
const page = globalThis;
/** In an iframe: whether its permissions policy allows `name`; undefined elsewhere. */
function frameAllows(name) {
    try {
        if (!page.window || page.window.top === page.window)
            return undefined;
        const policy = page.document?.permissionsPolicy ?? page.document?.featurePolicy;
        return typeof policy?.allowsFeature === "function" ? policy.allowsFeature(name) : undefined;
    }
    catch {
        return undefined;
    }
}
/** The server's `/health` for a `ws://` or `wss://` URL. */
function healthUrl(url) {
    try {
        const u = new URL(url);
        u.protocol = u.protocol === "wss:" ? "https:" : "http:";
        u.pathname = "/health";
        u.search = "";
        u.hash = "";
        return u.href;
    }
    catch {
        return null;
    }
}
/** A connection to a bapiws server. */
export class BapiwsClient {
    constructor(options = {}) {
        /** The extension notifications subscribed to, subscribed again on every reconnect. */
        this.subscribed = new Set();
        /** The permission's live status, once asked for; resolves to null where there is none. */
        this.permissionStatus = null;
        /** Why the client waits without retrying (for the permission to change, or requestAccess()). */
        this.held = null;
        /**
         * Counts attempts started: the asynchronous steps of an attempt (reading the permission,
         * finding out why it failed) do nothing once another attempt has started.
         */
        this.step = 0;
        /** Waits, while the permission is `prompt`, to report `permission-needed`. */
        this.promptTimer = null;
        /** Whether the current attempt waited on the permission prompt. */
        this.prompted = false;
        /** The socket of the current attempt or connection; null while waiting or closed. */
        this.ws = null;
        this.nextId = 1;
        this.pending = new Map();
        this.listeners = new Map();
        this.keepAliveTimer = null;
        this.connectTimer = null;
        this.retryTimer = null;
        this.attempt = 0;
        this.current = "closed";
        /** The callers of `connect()` waiting for the connection to open. */
        this.waiters = [];
        /**
         * Counts connect() starts and stops, so that code after emitting an event can tell
         * whether a listener closed (or closed and reconnected) the client meanwhile.
         */
        this.generation = 0;
        /** The simulated phone's controls (`Sim.*`; only on the `sim` backend). */
        this.sim = {
            incomingCall: (number) => this.request("Sim.IncomingCall", [number]),
            queueCall: (number, queueNumber = "", queueName) => this.request("Sim.QueueCall", queueName === undefined ? [number, queueNumber] : [number, queueNumber, queueName]),
            remoteAnswer: async (callId) => {
                await this.request("Sim.RemoteAnswer", callId === undefined ? [] : [callId]);
            },
            remoteHangUp: async (callId, reason) => {
                const params = {};
                if (callId !== undefined)
                    params.callId = callId;
                if (reason !== undefined)
                    params.reason = reason;
                await this.request("Sim.RemoteHangUp", params);
            },
            setAvailability: async (availability) => {
                await this.request("Sim.SetAvailability", [availability]);
            },
            setOffline: async () => {
                await this.request("Sim.SetOffline", []);
            },
            setOnline: async () => {
                await this.request("Sim.SetOnline", []);
            },
        };
        this.url = options.url ?? "ws://127.0.0.1:9898";
        this.backend = options.backend;
        this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
        this.connectTimeoutMs = options.connectTimeoutMs ?? 10000;
        this.promptHintMs = options.promptHintMs ?? 1000;
        this.keepAliveMs = options.keepAliveMs ?? 60000;
        this.reconnect = options.reconnect ?? true;
        this.minBackoffMs = options.minBackoffMs ?? 500;
        this.maxBackoffMs = options.maxBackoffMs ?? 30000;
        const Socket = options.WebSocket ??
            globalThis.WebSocket;
        if (!Socket) {
            throw new Error('no WebSocket implementation: this runtime has no global WebSocket (Node 20 without --experimental-websocket); ' +
                'pass one, e.g. the "ws" package: import WebSocket from "ws"; new BapiwsClient({ WebSocket })');
        }
        this.Socket = Socket;
        this.permissions =
            options.permissions !== undefined ? options.permissions : (page.navigator?.permissions ?? null);
        this.fetcher =
            options.fetch !== undefined
                ? options.fetch
                : typeof page.fetch === "function"
                    ? page.fetch.bind(globalThis)
                    : null;
        // A page on this computer itself (the dialer, a development server on localhost, a
        // file: page) reaches loopback without the permission, although it reads `prompt`.
        const here = page.location?.href;
        const onLoopback = page.location?.protocol === "file:" ||
            (here !== undefined && permissionNameFor(here) === "loopback-network");
        this.permissionName = onLoopback ? null : permissionNameFor(this.url);
    }
    /** The connection's state. */
    get state() {
        return this.current;
    }
    /**
     * Connects (and Inits the configured backend). Resolves once the connection is open;
     * with `reconnect`, keeps trying until it is. Rejects with {@link ConnectionError} when
     * an attempt fails without `reconnect`, or when `close()` is called first; with
     * {@link RpcError} when the server refuses the configured backend's Init.
     */
    connect() {
        if (this.current === "open")
            return Promise.resolve();
        const opened = new Promise((resolve, reject) => {
            this.waiters.push({ resolve, reject });
        });
        if (this.current === "closed")
            this.start();
        return opened;
    }
    /**
     * Connects now, and lets the browser ask the user for permission: call it from a user's
     * click (a "Connect the phone" button), for example when a `connection` event's cause is
     * `permission-needed`. Resolves once the connection is open. Rejects at once with a
     * {@link ConnectionError} whose cause is `permission-denied` or `frame-not-allowed` when
     * the browser refuses without asking (the user has to change the site's settings, or
     * the embedding page its iframe; the client keeps waiting for the permission to change);
     * otherwise as `connect()` does.
     */
    requestAccess() {
        if (this.current === "open")
            return Promise.resolve();
        const held = this.held;
        if (held && (held.cause === "permission-denied" || held.cause === "frame-not-allowed")) {
            return Promise.reject(new ConnectionError(held.why, held.cause));
        }
        const opened = new Promise((resolve, reject) => {
            this.waiters.push({ resolve, reject, access: true });
        });
        if (this.current === "closed") {
            this.start();
        }
        else if (this.ws === null) {
            // Waiting: for a retry's delay, for a permission, or to find out why an attempt
            // failed. Try now. (With a socket, an attempt is under way already.)
            this.clearRetryTimer();
            this.startAttempt();
        }
        return opened;
    }
    /** From closed: state `connecting`, the first attempt. */
    start() {
        this.attempt = 0;
        this.held = null;
        const generation = ++this.generation;
        this.setState("connecting");
        if (generation === this.generation)
            this.startAttempt();
    }
    /**
     * Closes the connection for good: no reconnect. Pending requests, and a `connect()`
     * still waiting, reject with {@link ConnectionError}.
     */
    close() {
        if (this.current === "closed")
            return;
        this.stop(new ConnectionError(`close() was called before the connection to ${this.url} opened`), "the client closed the connection");
    }
    /** Listens to an event; returns a function that stops listening. */
    on(event, listener) {
        let set = this.listeners.get(event);
        if (!set) {
            set = new Set();
            this.listeners.set(event, set);
        }
        set.add(listener);
        return () => this.off(event, listener);
    }
    /** Stops listening. */
    off(event, listener) {
        this.listeners.get(event)?.delete(listener);
    }
    /** Chooses the backend for this connection, and again after every reconnect. */
    async init(backend, options) {
        await this.request("Init", backend === undefined ? [] : [backend], options);
        this.backend = backend;
    }
    /** The phone's state. */
    getState(options) {
        return this.request("GetState", [], options);
    }
    /** Calls a number (digits with an optional leading +; spaces and -.() are ignored). */
    async callOut(number, options) {
        await this.request("CallOut", [number], options);
    }
    async hangUp(a, b) {
        const [callId, options] = callArgs(a, b);
        await this.request("HangUp", callId === undefined ? [] : [callId], options);
    }
    async answer(a, b) {
        const [callId, options] = callArgs(a, b);
        await this.request("Answer", callId === undefined ? [] : [callId], options);
    }
    /**
     * Extension: puts the call `callId` on hold; without it, the single connected call
     * (`-32002` when none, `-32007` with the candidate ids in `data` when several).
     */
    async hold(callId, options) {
        await this.request("Call.Hold", callId === undefined ? [] : [callId], options);
    }
    /** Extension: resumes the call `callId`; without it, the single held call. */
    async resume(callId, options) {
        await this.request("Call.Resume", callId === undefined ? [] : [callId], options);
    }
    /**
     * Extension: blind transfer: the far end of the call `callId` (without it, the single
     * connected call) is asked to call `number`.
     */
    async transfer(number, callId, options) {
        await this.request("Call.Transfer", callId === undefined ? [number] : [number, callId], options);
    }
    /**
     * Extension: attended transfer: the far end of the call `callId` (connected or held) is
     * connected to the far end of the call `targetCallId`, and both calls end here. Not on
     * baresip (`-32601`).
     */
    async transferTo(callId, targetCallId, options) {
        await this.request("Call.Transfer", { callId, targetCallId }, options);
    }
    /** Extension: sends DTMF digits (1 to 32 of `0-9 * # A-D`) on a connected call. */
    async sendDtmf(digits, callId, options) {
        await this.request("Call.SendDtmf", callId === undefined ? [digits] : [digits, callId], options);
    }
    /** Extension: mutes the microphone. */
    async mute(options) {
        await this.request("Call.Mute", [], options);
    }
    /** Extension: unmutes the microphone. */
    async unmute(options) {
        await this.request("Call.Unmute", [], options);
    }
    /**
     * Extension: this connection receives these notifications (`CallHeld`, `CallResumed`,
     * `CallTransferred`, `MuteChanged`, `CallHeldByFarEnd`, `CallResumedByFarEnd`) from now on, and again after every reconnect.
     */
    async subscribe(...names) {
        await this.request("Events.Subscribe", names);
        for (const name of names)
            this.subscribed.add(name);
    }
    /** The active calls. */
    async getActiveCalls(options) {
        return parseActiveCalls(await this.request("GetActiveCalls", [], options));
    }
    /**
     * Sends a request and resolves with its result. A documented method's params and
     * result are typed ({@link Methods}): `request("GetState")` is `Promise<PhoneState>`;
     * any other method takes any params and resolves with `unknown`. Rejects with
     * {@link RpcError} (the server's error), {@link TimeoutError}, {@link ConnectionError}
     * (not open, or the connection closed first), or the abort signal's reason.
     */
    request(method, ...args) {
        const [params, options] = args;
        const ws = this.ws;
        if (!ws || this.current !== "open" || ws.readyState !== OPEN) {
            return Promise.reject(new ConnectionError(`${method}: not connected to ${this.url}`));
        }
        return this.call(ws, method, params ?? [], options ?? {});
    }
    call(ws, method, params, { timeoutMs = this.requestTimeoutMs, signal }) {
        if (!(timeoutMs > 0)) {
            return Promise.reject(new RangeError(`${method}: timeoutMs must be above 0, not ${timeoutMs}`));
        }
        if (signal?.aborted)
            return Promise.reject(abortReason(signal));
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            const onAbort = () => {
                done();
                reject(abortReason(signal));
            };
            const timer = timeoutMs <= MAX_TIMER_MS
                ? setTimeout(() => {
                    done();
                    reject(new TimeoutError(method, timeoutMs));
                }, timeoutMs)
                : null;
            const done = () => {
                if (timer !== null)
                    clearTimeout(timer);
                signal?.removeEventListener("abort", onAbort);
                this.pending.delete(id);
            };
            signal?.addEventListener("abort", onAbort);
            this.pending.set(id, {
                method,
                resolve: (value) => {
                    done();
                    resolve(value);
                },
                reject: (error) => {
                    done();
                    reject(error);
                },
            });
            try {
                ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
            }
            catch (e) {
                done();
                reject(new ConnectionError(`${method}: cannot send: ${messageOf(e)}`));
            }
        });
    }
    emit(event, payload) {
        for (const listener of this.listeners.get(event) ?? []) {
            try {
                listener(payload);
            }
            catch (e) {
                // A listener's error must not break the connection.
                setTimeout(() => {
                    throw e;
                });
            }
        }
    }
    setState(state, error, cause) {
        this.current = state;
        const event = { state, attempt: this.attempt };
        if (error !== undefined)
            event.error = error;
        if (cause !== undefined)
            event.cause = cause;
        this.emit("connection", event);
    }
    /** The permission's state now, asking the browser the first time. */
    async permissionState() {
        if (!this.permissionStatus) {
            const permissions = this.permissions;
            const name = this.permissionName;
            this.permissionStatus =
                permissions && name
                    ? Promise.resolve()
                        .then(() => permissions.query({ name }))
                        .then((status) => {
                        status.addEventListener?.("change", () => this.onPermissionChange());
                        return status;
                    }, 
                    // A browser without this permission rejects the name: nothing to read.
                    () => null)
                    : Promise.resolve(null);
        }
        const state = (await this.permissionStatus)?.state;
        return state === "granted" || state === "denied" || state === "prompt" ? state : "unsupported";
    }
    /** The user or an administrator changed the permission: a waiting client tries again. */
    onPermissionChange() {
        if (this.held && this.current !== "closed" && this.current !== "open" && this.ws === null) {
            this.startAttempt();
        }
    }
    /** Opens a socket: one connection attempt. */
    startAttempt() {
        const step = ++this.step;
        this.held = null;
        this.prompted = false;
        let ws;
        try {
            ws = new this.Socket(this.url);
        }
        catch (e) {
            const why = `cannot connect to ${this.url}: ${messageOf(e)}`;
            const thrown = e?.name;
            void this.diagnose(typeof thrown === "string" ? thrown : undefined).then((cause) => {
                if (step !== this.step || this.current === "closed")
                    return;
                // A malformed or forbidden URL: trying again cannot help.
                const text = cause ? `${why}: ${CAUSE_TEXT[cause]}` : why;
                this.stop(new ConnectionError(text, cause), text, cause);
            });
            return;
        }
        this.ws = ws;
        this.connectTimer = setTimeout(() => {
            // Something accepted the connection but does not answer: no cause to find out
            // (asking /health would wait as long).
            this.endAttempt(ws, `no connection to ${this.url} within ${this.connectTimeoutMs} ms`, false);
        }, this.connectTimeoutMs);
        // While the permission is `prompt`, the user may be reading the browser's prompt: no
        // timeout cuts the attempt, and after a while the page learns that it waits on it.
        void this.permissionState().then((permission) => {
            if (this.ws !== ws || step !== this.step || permission !== "prompt")
                return;
            this.clearConnectTimer();
            this.promptTimer = setTimeout(() => {
                this.promptTimer = null;
                if (this.ws !== ws)
                    return;
                this.prompted = true;
                this.setState(this.current, undefined, "permission-needed");
            }, this.promptHintMs);
        });
        ws.onmessage = (ev) => {
            if (this.ws === ws)
                this.onMessage(ev.data);
        };
        let opened = false;
        // Some implementations (Node 20's) fire only `error` when connecting fails, others
        // `error` then `close`: whichever comes first ends the attempt, the other is ignored.
        ws.onerror = (ev) => {
            // The DOM's error event says nothing; ws's and undici's carry a message.
            const detail = ev?.message;
            const why = typeof detail === "string" && detail ? `: ${detail}` : "";
            this.endAttempt(ws, `connection to ${this.url} failed${why}`, !opened);
        };
        ws.onclose = (ev) => {
            const code = ev?.code;
            const why = code ? `closed (${code}${ev.reason ? `: ${ev.reason}` : ""})` : "closed";
            this.endAttempt(ws, opened ? why : `connection to ${this.url} failed: ${why}`, !opened);
        };
        ws.onopen = () => {
            if (this.ws !== ws)
                return;
            opened = true;
            this.clearConnectTimer();
            void this.onOpen(ws);
        };
    }
    /** Why an attempt failed before it opened, where the client can tell. */
    async diagnose(thrown) {
        let urlProtocol = "";
        try {
            urlProtocol = new URL(this.url).protocol;
        }
        catch {
            // A malformed URL: no cause of this kind.
        }
        const facts = {
            pageProtocol: page.location?.protocol,
            urlProtocol,
            thrown,
            permission: await this.permissionState(),
            prompted: this.prompted,
            frameAllowed: this.permissionName ? frameAllows(this.permissionName) : undefined,
            webkit: page.navigator?.vendor === "Apple Computer, Inc.",
            probe: "skipped",
        };
        // The browser refused, or asked: asking the server would not tell more (and could
        // show the prompt again).
        const known = connectionCause(facts);
        if (known !== undefined || thrown !== undefined)
            return known;
        facts.probe = await this.probe();
        return connectionCause(facts);
    }
    /**
     * Asks the server's `/health`: readable (the server answers this page), refused (an
     * opaque answer: something listens there but does not allow this origin; or a readable
     * 403 outside browsers), or nothing.
     */
    async probe() {
        const fetcher = this.fetcher;
        const url = healthUrl(this.url);
        if (!fetcher || !url)
            return "skipped";
        const signal = () => typeof AbortSignal !== "undefined" && typeof AbortSignal.timeout === "function"
            ? AbortSignal.timeout(PROBE_MS)
            : undefined;
        try {
            const r = await fetcher(url, { mode: "cors", cache: "no-store", credentials: "omit", signal: signal() });
            return r.status === 403 ? "refused" : "answered";
        }
        catch {
            // Nothing answered, or a browser hid the answer (CORS): ask again without reading it.
        }
        try {
            await fetcher(url, { mode: "no-cors", cache: "no-store", credentials: "omit", signal: signal() });
            return "refused";
        }
        catch {
            return "none";
        }
    }
    async onOpen(ws) {
        // Re-applied on every connection: the backend (Init), then the extension
        // notifications subscribed to (Events.Subscribe).
        const steps = [];
        if (this.backend !== undefined)
            steps.push(["Init", [this.backend], `Init ${this.backend}`]);
        const subscribed = [...this.subscribed];
        if (subscribed.length > 0) {
            steps.push(["Events.Subscribe", subscribed, `Events.Subscribe ${subscribed.join(" ")}`]);
        }
        for (const [method, params, what] of steps) {
            try {
                await this.call(ws, method, params, {});
            }
            catch (e) {
                if (this.ws !== ws)
                    return; // the attempt ended meanwhile, and that was handled
                if (e instanceof RpcError) {
                    // The server refuses it: a configuration error that retrying cannot fix.
                    this.stop(e, `${what}: ${e.message}`);
                }
                else {
                    this.endAttempt(ws, `${method}: ${messageOf(e)}`, false);
                }
                return;
            }
        }
        if (this.ws !== ws)
            return;
        this.attempt = 0;
        this.startKeepAlive(ws);
        this.setState("open");
        if (this.ws !== ws)
            return; // a listener closed the client
        for (const w of this.waiters.splice(0))
            w.resolve();
    }
    /**
     * The end of a socket: it failed to connect (`failed`: before it opened), timed out,
     * closed, or stopped answering. Idempotent: only the first call for the current socket
     * counts.
     */
    endAttempt(ws, why, failed) {
        if (this.ws !== ws)
            return;
        this.ws = null;
        this.clearConnectTimer();
        this.stopKeepAlive();
        closeQuietly(ws); // no-op when closed already; abandons one still connecting or half-open
        this.failPending(why);
        if (!failed) {
            this.retry(why);
            return;
        }
        const step = this.step;
        void this.diagnose().then((cause) => {
            // close(), or requestAccess() started another attempt meanwhile.
            if (step !== this.step || this.current === "closed")
                return;
            const text = cause ? `${why}: ${CAUSE_TEXT[cause]}` : why;
            if (cause === "mixed-content") {
                this.stop(new ConnectionError(text, cause), text, cause);
            }
            else if (cause === "permission-needed" || cause === "permission-denied" || cause === "frame-not-allowed") {
                this.waitForPermission(cause, text);
            }
            else {
                this.retry(text, cause);
            }
        });
    }
    /** After a failed attempt or a lost connection: the next attempt after a delay, or stop. */
    retry(why, cause) {
        if (!this.reconnect) {
            this.stop(new ConnectionError(why, cause), why, cause);
            return;
        }
        this.attempt += 1;
        const generation = this.generation;
        const step = this.step;
        this.setState("reconnecting", why, cause);
        // A listener closed the client, or started an attempt (requestAccess()).
        if (generation !== this.generation || step !== this.step)
            return;
        const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(this.attempt - 1, 16));
        // Full jitter in the upper half: many tabs do not reconnect in step.
        const delay = base / 2 + Math.random() * (base / 2);
        this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.startAttempt();
        }, delay);
    }
    /**
     * The browser refuses, or waits for the user: no retry loop. The client tries again when
     * the permission changes, or when requestAccess() is called (unless the browser refuses
     * without asking).
     */
    waitForPermission(cause, why) {
        if (!this.reconnect) {
            this.stop(new ConnectionError(why, cause), why, cause);
            return;
        }
        this.attempt += 1;
        this.held = { cause, why };
        if (cause !== "permission-needed") {
            const refused = this.waiters.filter((w) => w.access);
            this.waiters = this.waiters.filter((w) => !w.access);
            for (const w of refused)
                w.reject(new ConnectionError(why, cause));
        }
        this.setState("reconnecting", why, cause);
    }
    /**
     * Stops for good: state `closed` (with `why`, when it is not the caller's own close()),
     * pending requests fail, and waiting `connect()` calls reject with `error`.
     */
    stop(error, why, cause) {
        this.generation += 1;
        this.step += 1;
        this.held = null;
        this.clearRetryTimer();
        this.clearConnectTimer();
        this.stopKeepAlive();
        const ws = this.ws;
        this.ws = null;
        if (ws)
            closeQuietly(ws, 1000, "client closed");
        this.failPending(why ?? "the client closed the connection");
        const waiters = this.waiters.splice(0);
        this.setState("closed", why, cause);
        for (const w of waiters)
            w.reject(error);
    }
    clearRetryTimer() {
        if (this.retryTimer)
            clearTimeout(this.retryTimer);
        this.retryTimer = null;
    }
    clearConnectTimer() {
        if (this.connectTimer)
            clearTimeout(this.connectTimer);
        this.connectTimer = null;
        if (this.promptTimer)
            clearTimeout(this.promptTimer);
        this.promptTimer = null;
    }
    startKeepAlive(ws) {
        this.stopKeepAlive();
        if (!(this.keepAliveMs > 0))
            return;
        let waiting = false;
        this.keepAliveTimer = setInterval(() => {
            if (waiting || this.ws !== ws)
                return;
            waiting = true;
            this.call(ws, "GetState", [], {}).then(() => {
                waiting = false;
            }, (e) => {
                waiting = false;
                // No reply: the connection is dead even if the socket looks open (a half-open
                // TCP connection after sleep, a stalled server). Drop it and reconnect.
                if (e instanceof TimeoutError)
                    this.endAttempt(ws, `keep-alive: ${e.message}`, false);
            });
        }, this.keepAliveMs);
    }
    stopKeepAlive() {
        if (this.keepAliveTimer)
            clearInterval(this.keepAliveTimer);
        this.keepAliveTimer = null;
    }
    failPending(why) {
        for (const p of [...this.pending.values()]) {
            p.reject(new ConnectionError(`${p.method}: ${why}`));
        }
    }
    onMessage(data) {
        let msg;
        try {
            msg = JSON.parse(String(data));
        }
        catch {
            return;
        }
        for (const m of Array.isArray(msg) ? msg : [msg]) {
            if (m && typeof m === "object")
                this.dispatch(m);
        }
    }
    dispatch(m) {
        if (typeof m.method === "string" && !("id" in m)) {
            this.notify(m.method, m.params);
            return;
        }
        if (typeof m.id !== "number")
            return;
        const p = this.pending.get(m.id);
        if (!p)
            return;
        const err = m.error;
        if (err) {
            p.reject(new RpcError(Number(err.code), String(err.message ?? "error"), err.data));
        }
        else {
            p.resolve(m.result);
        }
    }
    notify(method, params) {
        this.emit("notification", { method, params });
        const a = Array.isArray(params) ? params.map(String) : [];
        switch (method) {
            case "StateChanged":
                this.emit("StateChanged", { state: a[0] });
                break;
            case "CallComing":
                this.emit("CallComing", { callId: a[0], number: a[1] });
                break;
            case "QueueCallComing":
                this.emit("QueueCallComing", {
                    callId: a[0],
                    queueCallId: a[1],
                    callerNumber: a[2],
                    queueNumber: a[3],
                    queueId: a[4],
                    queueName: a[5],
                });
                break;
            case "CallingOut":
                this.emit("CallingOut", { callId: a[0], number: a[1] });
                break;
            case "CallConnected":
                this.emit("CallConnected", { callId: a[0] });
                break;
            case "CallDisconnected":
                this.emit("CallDisconnected", { callId: a[0], extraInfo: a[1] ?? "" });
                break;
            case "CallHeld":
                this.emit("CallHeld", { callId: a[0] });
                break;
            case "CallResumed":
                this.emit("CallResumed", { callId: a[0] });
                break;
            case "CallTransferred":
                this.emit("CallTransferred", { callId: a[0], number: a[1] ?? "" });
                break;
            case "MuteChanged":
                this.emit("MuteChanged", { muted: a[0] === "on" });
                break;
            case "CallHeldByFarEnd":
                this.emit("CallHeldByFarEnd", { callId: a[0] });
                break;
            case "CallResumedByFarEnd":
                this.emit("CallResumedByFarEnd", { callId: a[0] });
                break;
        }
    }
}
/** Splits `(callId?, options?)` or `(options?)`. */
function callArgs(a, b) {
    return typeof a === "object" && a !== null ? [undefined, a] : [a, b];
}
function abortReason(signal) {
    return signal?.reason ?? new Error("the request was aborted");
}
/** Closes a socket, ignoring what a socket in any state may throw. */
function closeQuietly(ws, code, reason) {
    try {
        if (code === undefined)
            ws.close();
        else
            ws.close(code, reason);
    }
    catch {
        // Closed already, or an implementation that refuses to close while connecting.
    }
}

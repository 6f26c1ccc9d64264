/**
 * bapiws-client: drive the phone on the user's workstation from a web page (or Node),
 * through a bapiws / EnreachClientAPI server, over WebSocket JSON-RPC 2.0.
 *
 * It handles what every integration needs: matching replies to requests, a timeout per
 * request, keep-alive, reconnecting with backoff and jitter, and re-applying Init after a
 * reconnect. No runtime dependencies.
 */
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
/** The connection closed before the reply came. */
export class ConnectionError extends Error {
    constructor(message) {
        super(message);
        this.name = "ConnectionError";
    }
}
const OPEN = 1;
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
/** A connection to a bapiws server. */
export class BapiwsClient {
    constructor(options = {}) {
        this.ws = null;
        this.nextId = 1;
        this.pending = new Map();
        this.listeners = new Map();
        this.keepAliveTimer = null;
        this.retryTimer = null;
        this.attempt = 0;
        this.stopped = false;
        this.current = "closed";
        this.opened = null;
        this.resolveOpened = null;
        /** The simulated phone's controls (`Sim.*`; only on the `sim` backend). */
        this.sim = {
            incomingCall: async (number) => String(await this.request("Sim.IncomingCall", [number])),
            queueCall: async (number, queueNumber = "", queueName) => String(await this.request("Sim.QueueCall", queueName === undefined ? [number, queueNumber] : [number, queueNumber, queueName])),
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
        this.keepAliveMs = options.keepAliveMs ?? 60000;
        this.reconnect = options.reconnect ?? true;
        this.minBackoffMs = options.minBackoffMs ?? 500;
        this.maxBackoffMs = options.maxBackoffMs ?? 30000;
        const Socket = options.WebSocket ??
            globalThis.WebSocket;
        if (!Socket) {
            throw new Error("no WebSocket implementation: pass options.WebSocket");
        }
        this.Socket = Socket;
    }
    /** The connection's state. */
    get state() {
        return this.current;
    }
    /**
     * Connects (and Inits the configured backend). Resolves once the connection is open;
     * with `reconnect`, keeps trying until it is.
     */
    connect() {
        this.stopped = false;
        if (!this.opened) {
            this.opened = new Promise((resolve) => {
                this.resolveOpened = resolve;
            });
            this.open();
        }
        return this.opened;
    }
    /** Closes the connection for good: no reconnect. Pending requests fail. */
    close() {
        this.stopped = true;
        if (this.retryTimer)
            clearTimeout(this.retryTimer);
        this.retryTimer = null;
        this.stopKeepAlive();
        const ws = this.ws;
        this.ws = null;
        if (ws) {
            ws.onclose = null;
            ws.close(1000, "client closed");
        }
        this.failPending("the client closed the connection");
        this.opened = null;
        this.setState("closed");
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
    async init(backend) {
        await this.request("Init", backend === undefined ? [] : [backend]);
        this.backend = backend;
    }
    /** The phone's state. */
    async getState() {
        return (await this.request("GetState", []));
    }
    /** Calls a number (digits with an optional leading +; spaces and -.() are ignored). */
    async callOut(number) {
        await this.request("CallOut", [number]);
    }
    /** Ends the active call. */
    async hangUp() {
        await this.request("HangUp", []);
    }
    /** Answers the latest ringing inbound call. */
    async answer() {
        await this.request("Answer", []);
    }
    /** The active calls. */
    async getActiveCalls() {
        return parseActiveCalls(await this.request("GetActiveCalls", []));
    }
    /** Sends any request and resolves with its result (rejects with RpcError). */
    request(method, params = []) {
        const ws = this.ws;
        if (!ws || ws.readyState !== OPEN) {
            return Promise.reject(new ConnectionError(`not connected to ${this.url}`));
        }
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new TimeoutError(method, this.requestTimeoutMs));
            }, this.requestTimeoutMs);
            this.pending.set(id, { method, resolve, reject, timer });
            try {
                ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
            }
            catch (e) {
                clearTimeout(timer);
                this.pending.delete(id);
                reject(new ConnectionError(String(e)));
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
    setState(state, error) {
        if (this.current === state && state !== "reconnecting")
            return;
        this.current = state;
        this.emit("connection", { state, attempt: this.attempt, error });
    }
    open() {
        this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
        let ws;
        try {
            ws = new this.Socket(this.url);
        }
        catch (e) {
            this.scheduleRetry(String(e));
            return;
        }
        this.ws = ws;
        ws.onmessage = (ev) => this.onMessage(ev.data);
        ws.onerror = () => {
            /* the close event follows and handles it */
        };
        ws.onclose = (ev) => {
            if (this.ws !== ws)
                return;
            this.ws = null;
            this.stopKeepAlive();
            this.failPending("the connection closed");
            const why = ev && ev.code ? `closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ""})` : "closed";
            this.scheduleRetry(why);
        };
        ws.onopen = () => {
            void this.onOpen(ws);
        };
    }
    async onOpen(ws) {
        if (this.backend !== undefined) {
            try {
                await this.request("Init", [this.backend]);
            }
            catch (e) {
                // An unknown backend is a configuration error: say so, stay connected.
                this.emit("connection", { state: "open", attempt: this.attempt, error: String(e) });
            }
        }
        if (this.ws !== ws)
            return;
        this.attempt = 0;
        this.setState("open");
        this.startKeepAlive();
        this.resolveOpened?.();
        this.resolveOpened = null;
    }
    scheduleRetry(error) {
        if (this.stopped || !this.reconnect) {
            this.opened = null;
            this.setState("closed", error);
            return;
        }
        this.attempt += 1;
        this.setState("reconnecting", error);
        const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(this.attempt - 1, 16));
        // Full jitter in the upper half: many tabs do not reconnect in step.
        const delay = base / 2 + Math.random() * (base / 2);
        this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            if (!this.stopped)
                this.open();
        }, delay);
    }
    startKeepAlive() {
        this.stopKeepAlive();
        if (this.keepAliveMs > 0) {
            this.keepAliveTimer = setInterval(() => {
                this.request("GetState", []).catch(() => {
                    /* a failed keep-alive shows as a closed connection */
                });
            }, this.keepAliveMs);
        }
    }
    stopKeepAlive() {
        if (this.keepAliveTimer)
            clearInterval(this.keepAliveTimer);
        this.keepAliveTimer = null;
    }
    failPending(why) {
        for (const [id, p] of this.pending) {
            clearTimeout(p.timer);
            p.reject(new ConnectionError(`${p.method}: ${why}`));
            this.pending.delete(id);
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
        this.pending.delete(m.id);
        clearTimeout(p.timer);
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
        }
    }
}

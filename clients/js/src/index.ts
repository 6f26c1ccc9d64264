/**
 * bapiws-client: drive the phone on the user's workstation from a web page (or Node),
 * through a bapiws / EnreachClientAPI server, over WebSocket JSON-RPC 2.0.
 *
 * It handles what every integration needs: matching replies to requests, a timeout per
 * request, keep-alive, reconnecting with backoff and jitter, and re-applying Init after a
 * reconnect. No runtime dependencies.
 */

/** What GetState reports and StateChanged carries. */
export type PhoneState =
  | "Available"
  | "Busy"
  | "Away"
  | "BRB"
  | "DND"
  | "OffWork"
  | "Offline";

/** One active call, parsed from GetActiveCalls' six-field records. */
export interface ActiveCall {
  /** 1-based position in the list. */
  ordinal: number;
  direction: "Inbound" | "Outbound";
  state: "Ringing" | "Calling" | "Connected" | "OnHold";
  /** The remote party's number. */
  number: string;
  callId: string;
  /** `yyyy-MM-dd HH:mm:ss.fff`, the phone's local time. */
  started: string;
}

/** The state of the client's connection to the server. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Every event the client emits, with its payload. */
export interface ClientEvents {
  StateChanged: { state: PhoneState };
  CallComing: { callId: string; number: string };
  QueueCallComing: {
    callId: string;
    queueCallId: string;
    callerNumber: string;
    queueNumber: string;
    queueId: string;
    queueName: string;
  };
  CallingOut: { callId: string; number: string };
  CallConnected: { callId: string };
  CallDisconnected: { callId: string; extraInfo: string };
  /** Every notification as received, including ones this version does not know. */
  notification: { method: string; params: unknown };
  /** The connection changed state; `attempt` counts reconnect attempts. */
  connection: { state: ConnectionState; attempt: number; error?: string };
}

/** The server answered with a JSON-RPC error. */
export class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }
}

/** No reply came within the request timeout. */
export class TimeoutError extends Error {
  constructor(method: string, ms: number) {
    super(`no reply to ${method} within ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** The connection closed before the reply came. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionError";
  }
}

/** Options of {@link BapiwsClient}. */
export interface ClientOptions {
  /** The server. Default `ws://127.0.0.1:9898`. */
  url?: string;
  /** Backend to Init on every (re)connection; default: the server's default. */
  backend?: string;
  /** Milliseconds to wait for each reply. Default 10000. */
  requestTimeoutMs?: number;
  /** Milliseconds between keep-alive GetState calls; 0 turns keep-alive off. Default 60000. */
  keepAliveMs?: number;
  /** Reconnect when the connection drops. Default true. */
  reconnect?: boolean;
  /** First reconnect delay. Default 500. */
  minBackoffMs?: number;
  /** Longest reconnect delay. Default 30000. */
  maxBackoffMs?: number;
  /** A WebSocket implementation, where there is no global one. */
  WebSocket?: WebSocketConstructor;
}

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

type Listener<T> = (payload: T) => void;

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;

/** Turns GetActiveCalls' flat result into call objects. */
export function parseActiveCalls(result: unknown): ActiveCall[] {
  if (!Array.isArray(result)) return [];
  const calls: ActiveCall[] = [];
  for (let i = 0; i + 6 <= result.length; i += 6) {
    const f = result.slice(i, i + 6).map(String);
    calls.push({
      ordinal: Number(f[0]),
      direction: f[1] as ActiveCall["direction"],
      state: f[2] as ActiveCall["state"],
      number: f[3],
      callId: f[4],
      started: f[5],
    });
  }
  return calls;
}

/** A connection to a bapiws server. */
export class BapiwsClient {
  private readonly url: string;
  private backend: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly keepAliveMs: number;
  private readonly reconnect: boolean;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly Socket: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<Listener<never>>>();
  private keepAliveTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private stopped = false;
  private current: ConnectionState = "closed";
  private opened: Promise<void> | null = null;
  private resolveOpened: (() => void) | null = null;

  constructor(options: ClientOptions = {}) {
    this.url = options.url ?? "ws://127.0.0.1:9898";
    this.backend = options.backend;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this.keepAliveMs = options.keepAliveMs ?? 60000;
    this.reconnect = options.reconnect ?? true;
    this.minBackoffMs = options.minBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 30000;
    const Socket =
      options.WebSocket ??
      (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Socket) {
      throw new Error("no WebSocket implementation: pass options.WebSocket");
    }
    this.Socket = Socket;
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.current;
  }

  /**
   * Connects (and Inits the configured backend). Resolves once the connection is open;
   * with `reconnect`, keeps trying until it is.
   */
  connect(): Promise<void> {
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
  close(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
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
  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Stops listening. */
  off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Chooses the backend for this connection, and again after every reconnect. */
  async init(backend?: string): Promise<void> {
    await this.request("Init", backend === undefined ? [] : [backend]);
    this.backend = backend;
  }

  /** The phone's state. */
  async getState(): Promise<PhoneState> {
    return (await this.request("GetState", [])) as PhoneState;
  }

  /** Calls a number (digits with an optional leading +; spaces and -.() are ignored). */
  async callOut(number: string): Promise<void> {
    await this.request("CallOut", [number]);
  }

  /** Ends the active call. */
  async hangUp(): Promise<void> {
    await this.request("HangUp", []);
  }

  /** Answers the latest ringing inbound call. */
  async answer(): Promise<void> {
    await this.request("Answer", []);
  }

  /** The active calls. */
  async getActiveCalls(): Promise<ActiveCall[]> {
    return parseActiveCalls(await this.request("GetActiveCalls", []));
  }

  /** The simulated phone's controls (`Sim.*`; only on the `sim` backend). */
  readonly sim = {
    incomingCall: async (number: string): Promise<string> =>
      String(await this.request("Sim.IncomingCall", [number])),
    queueCall: async (number: string, queueNumber = "", queueName?: string): Promise<string> =>
      String(
        await this.request(
          "Sim.QueueCall",
          queueName === undefined ? [number, queueNumber] : [number, queueNumber, queueName],
        ),
      ),
    remoteAnswer: async (callId?: string): Promise<void> => {
      await this.request("Sim.RemoteAnswer", callId === undefined ? [] : [callId]);
    },
    remoteHangUp: async (callId?: string, reason?: string): Promise<void> => {
      const params: Record<string, string> = {};
      if (callId !== undefined) params.callId = callId;
      if (reason !== undefined) params.reason = reason;
      await this.request("Sim.RemoteHangUp", params);
    },
    setAvailability: async (availability: Exclude<PhoneState, "Offline">): Promise<void> => {
      await this.request("Sim.SetAvailability", [availability]);
    },
    setOffline: async (): Promise<void> => {
      await this.request("Sim.SetOffline", []);
    },
    setOnline: async (): Promise<void> => {
      await this.request("Sim.SetOnline", []);
    },
  };

  /** Sends any request and resolves with its result (rejects with RpcError). */
  request(method: string, params: unknown[] | Record<string, unknown> = []): Promise<unknown> {
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
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ConnectionError(String(e)));
      }
    });
  }

  private emit<K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as Listener<ClientEvents[K]>)(payload);
      } catch (e) {
        // A listener's error must not break the connection.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private setState(state: ConnectionState, error?: string): void {
    if (this.current === state && state !== "reconnecting") return;
    this.current = state;
    this.emit("connection", { state, attempt: this.attempt, error });
  }

  private open(): void {
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let ws: WebSocketLike;
    try {
      ws = new this.Socket(this.url);
    } catch (e) {
      this.scheduleRetry(String(e));
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => {
      /* the close event follows and handles it */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
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

  private async onOpen(ws: WebSocketLike): Promise<void> {
    if (this.backend !== undefined) {
      try {
        await this.request("Init", [this.backend]);
      } catch (e) {
        // An unknown backend is a configuration error: say so, stay connected.
        this.emit("connection", { state: "open", attempt: this.attempt, error: String(e) });
      }
    }
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.setState("open");
    this.startKeepAlive();
    this.resolveOpened?.();
    this.resolveOpened = null;
  }

  private scheduleRetry(error: string): void {
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
      if (!this.stopped) this.open();
    }, delay);
  }

  private startKeepAlive(): void {
    this.stopKeepAlive();
    if (this.keepAliveMs > 0) {
      this.keepAliveTimer = setInterval(() => {
        this.request("GetState", []).catch(() => {
          /* a failed keep-alive shows as a closed connection */
        });
      }, this.keepAliveMs);
    }
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private failPending(why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ConnectionError(`${p.method}: ${why}`));
      this.pending.delete(id);
    }
  }

  private onMessage(data: unknown): void {
    let msg: unknown;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return;
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m && typeof m === "object") this.dispatch(m as Record<string, unknown>);
    }
  }

  private dispatch(m: Record<string, unknown>): void {
    if (typeof m.method === "string" && !("id" in m)) {
      this.notify(m.method, m.params);
      return;
    }
    if (typeof m.id !== "number") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    const err = m.error as { code?: number; message?: string; data?: unknown } | undefined;
    if (err) {
      p.reject(new RpcError(Number(err.code), String(err.message ?? "error"), err.data));
    } else {
      p.resolve(m.result);
    }
  }

  private notify(method: string, params: unknown): void {
    this.emit("notification", { method, params });
    const a = Array.isArray(params) ? params.map(String) : [];
    switch (method) {
      case "StateChanged":
        this.emit("StateChanged", { state: a[0] as PhoneState });
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

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

/** What GetState reports and StateChanged carries. */
export type PhoneState =
  | "Available"
  | "Busy"
  | "Away"
  | "BRB"
  | "DND"
  | "OffWork"
  | "Offline";

/** The user's availability, as `Sim.SetAvailability` takes it. */
export type Availability = Exclude<PhoneState, "Offline">;

/** One active call, parsed from GetActiveCalls' six-field records. */
export interface ActiveCall {
  /** 1-based position in the list. */
  ordinal: number;
  direction: "Inbound" | "Outbound";
  /** `HeldByFarEnd`: connected, and the far end holds it (the built-in SIP phone only). */
  state: "Ringing" | "Calling" | "Connected" | "OnHold" | "HeldByFarEnd";
  /** The remote party's number. */
  number: string;
  callId: string;
  /** `yyyy-MM-dd HH:mm:ss.fff`, the phone's local time. */
  started: string;
}

/** The state of the client's connection to the server. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/**
 * Why the client cannot reach the server, where it can tell ({@link connectionCause}):
 *
 * - `permission-needed`: the browser asks the user whether this site may reach the
 *   computer (Local Network Access), and the user has not allowed it yet: the prompt is on
 *   screen, or the user closed it without choosing. The client retries only when
 *   {@link BapiwsClient.requestAccess} is called (from a user's click) or the permission
 *   changes.
 * - `permission-denied`: the browser refuses without asking: the user chose Block, an
 *   administrator's policy blocks the site, or the page is plain `http://` (not a secure
 *   context: such pages cannot be given the permission). No retry loop: the client waits
 *   until the permission changes.
 * - `frame-not-allowed`: the page is inside an iframe that was not given the permission
 *   (`<iframe allow="loopback-network">`); the embedding page must add it. No retry loop.
 * - `unreachable`: nothing answers at the server's address: bapiws is not running there
 *   (or listens on another port).
 * - `origin-refused`: something answers at that address but refuses this page: the
 *   server's `allowed_origins` does not list this page's origin.
 * - `mixed-content`: the browser blocks `ws://` from an `https://` page (Safari and every
 *   WebKit browser). Retrying cannot help: the client closes.
 */
export type ConnectionCause =
  | "permission-needed"
  | "permission-denied"
  | "frame-not-allowed"
  | "unreachable"
  | "origin-refused"
  | "mixed-content";

/**
 * What the client found out about a connection attempt that failed before it opened;
 * {@link connectionCause} turns it into a {@link ConnectionCause}.
 */
export interface AttemptFacts {
  /** The page's `location.protocol` (`"https:"`); undefined outside a page. */
  pageProtocol?: string;
  /** The server URL's protocol: `"ws:"` or `"wss:"`. */
  urlProtocol: string;
  /** The name of the exception the WebSocket constructor threw (`"SecurityError"`), if any. */
  thrown?: string;
  /**
   * The browser's Local Network Access permission for the server's address
   * (`loopback-network`, or `local-network` for a private address) after the attempt, or
   * `"unsupported"`: no Permissions API, a browser without the permission, or a server that
   * is not on a loopback or private address.
   */
  permission: "granted" | "denied" | "prompt" | "unsupported";
  /**
   * Whether the attempt waited on the permission prompt: it was still pending, with the
   * permission `prompt`, after `promptHintMs`.
   */
  prompted?: boolean;
  /**
   * In an iframe: whether its permissions policy lets it use the permission (false
   * without `allow="loopback-network"`). Undefined in a top-level page, or where the
   * browser cannot tell.
   */
  frameAllowed?: boolean;
  /** Whether the browser is WebKit (Safari, and every browser on iOS). */
  webkit?: boolean;
  /**
   * What a request for the server's `/health` found: `answered` (the server answered this
   * page), `refused` (something answered, but not to this page: an opaque response, or a
   * readable 403), `none` (nothing answered), `skipped` (not made).
   */
  probe: "answered" | "refused" | "none" | "skipped";
}

/**
 * The cause of a failed connection attempt, from what the client found out; undefined
 * when it cannot tell. The client uses it for its `connection` events and its
 * {@link ConnectionError}s; exported so that pages (and tests) can see the rules.
 */
export function connectionCause(facts: AttemptFacts): ConnectionCause | undefined {
  const insecureSocket = facts.pageProtocol === "https:" && facts.urlProtocol === "ws:";
  if (insecureSocket && (facts.thrown === "SecurityError" || facts.webkit === true)) {
    return "mixed-content";
  }
  if (facts.frameAllowed === false && facts.permission !== "granted") return "frame-not-allowed";
  if (facts.permission === "denied") return "permission-denied";
  if (facts.permission === "prompt" && facts.prompted === true) return "permission-needed";
  if (facts.probe === "refused") return "origin-refused";
  if (facts.probe === "none") return "unreachable";
  return undefined;
}

/** What each cause means, added to the error text of a failed attempt. */
const CAUSE_TEXT: Record<ConnectionCause, string> = {
  "permission-needed": "the browser is waiting for the user to allow this site to reach the computer",
  "permission-denied": "the browser does not let this site reach the computer (Local Network Access blocked)",
  "frame-not-allowed": 'this page is in an iframe without allow="loopback-network"',
  unreachable: "nothing answers there: bapiws is not running",
  "origin-refused": "the server does not allow this page's origin (allowed_origins)",
  "mixed-content": "the browser blocks ws:// from an https:// page (mixed content)",
};

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
  /** Extension (after {@link BapiwsClient.subscribe}): a connected call was put on hold. */
  CallHeld: { callId: string };
  /** Extension (after {@link BapiwsClient.subscribe}): a held call is connected again. */
  CallResumed: { callId: string };
  /** Extension (after {@link BapiwsClient.subscribe}): a blind transfer of the call was sent. */
  CallTransferred: { callId: string; number: string };
  /** Extension (after {@link BapiwsClient.subscribe}): the microphone was muted or unmuted. */
  MuteChanged: { muted: boolean };
  /** Extension (after {@link BapiwsClient.subscribe}): the far end put the call on hold. */
  CallHeldByFarEnd: { callId: string };
  /** Extension (after {@link BapiwsClient.subscribe}): the far end took the call off hold. */
  CallResumedByFarEnd: { callId: string };
  /** Every notification as received, including ones this version does not know. */
  notification: { method: string; params: unknown };
  /**
   * The connection changed state, once per change: `connecting` when `connect()` starts,
   * `open` when connected (and Init done), `reconnecting` once per reconnect attempt
   * (`attempt` counts them, `error` says why the previous attempt or connection ended),
   * `closed` after `close()` or when the client gave up (`error` says why). `cause` says
   * why an attempt failed, where the client can tell; a `connecting` or `reconnecting`
   * event comes once more, in the same state, with `cause: "permission-needed"` when an
   * attempt waits on the browser's permission prompt.
   */
  connection: { state: ConnectionState; attempt: number; error?: string; cause?: ConnectionCause };
}

/** The extension notifications that {@link BapiwsClient.subscribe} opts into. */
export type ExtensionEvent =
  | "CallHeld"
  | "CallResumed"
  | "CallTransferred"
  | "MuteChanged"
  | "CallHeldByFarEnd"
  | "CallResumedByFarEnd";

/** Params of a method that takes an optional call id: `[]`, `[callId]` or `{ callId }`. */
export type CallIdParams = readonly [callId?: string] | { readonly callId?: string };

/** Params that are not empty: positional, or named. */
export type Params = readonly unknown[] | Readonly<Record<string, unknown>>;

/** Params of a method that takes none. */
export type NoParams = readonly [] | Readonly<Record<string, never>>;

/**
 * The documented methods (and the simulated phone's `Sim.*` methods): their params,
 * positional or named, and their results. `request()` is typed by it.
 */
export interface Methods {
  Init: { params: readonly [backend?: string] | { readonly backend?: string }; result: 0 };
  GetState: { params: NoParams; result: PhoneState };
  CallOut: { params: readonly [number: string] | { readonly number: string }; result: 0 };
  HangUp: { params: CallIdParams; result: 0 };
  Answer: { params: CallIdParams; result: 0 };
  /** Six strings per call; {@link parseActiveCalls} turns them into objects. */
  GetActiveCalls: { params: NoParams; result: string[] };
  /** Result: the new call's id. */
  "Sim.IncomingCall": {
    params: readonly [number: string] | { readonly number: string };
    result: string;
  };
  /** Result: the new call's id. */
  "Sim.QueueCall": {
    params:
      | readonly [number: string, queueNumber?: string, queueName?: string]
      | { readonly number: string; readonly queueNumber?: string; readonly queueName?: string };
    result: string;
  };
  "Sim.RemoteAnswer": {
    params: readonly [callId?: string] | { readonly callId?: string };
    result: 0;
  };
  "Sim.RemoteHangUp": {
    params:
      | readonly [callId?: string, reason?: string]
      | { readonly callId?: string; readonly reason?: string };
    result: 0;
  };
  "Sim.SetAvailability": {
    params: readonly [availability: Availability] | { readonly availability: Availability };
    result: 0;
  };
  "Sim.SetOffline": { params: NoParams; result: 0 };
  "Sim.SetOnline": { params: NoParams; result: 0 };
  /** Extension: puts a connected call on hold. */
  "Call.Hold": { params: CallIdParams; result: 0 };
  /** Extension: resumes a held call. */
  "Call.Resume": { params: CallIdParams; result: 0 };
  /**
   * Extension: blind transfer of a connected call to `number`, or attended transfer of
   * the call `callId` to the call `targetCallId`.
   */
  "Call.Transfer": {
    params:
      | readonly [number: string, callId?: string]
      | { readonly number: string; readonly callId?: string }
      | readonly [callId: string, targetCallId: string]
      | { readonly callId: string; readonly targetCallId: string };
    result: 0;
  };
  /** Extension: sends DTMF (1 to 32 of `0-9 * # A-D`) on a connected call. */
  "Call.SendDtmf": {
    params:
      | readonly [digits: string, callId?: string]
      | { readonly digits: string; readonly callId?: string };
    result: 0;
  };
  /** Extension: mutes the microphone. */
  "Call.Mute": { params: NoParams; result: 0 };
  /** Extension: unmutes the microphone. */
  "Call.Unmute": { params: NoParams; result: 0 };
  /** Extension: this connection receives these extension notifications from now on. */
  "Events.Subscribe": {
    params:
      | readonly [ExtensionEvent, ...ExtensionEvent[]]
      | { readonly names: readonly [ExtensionEvent, ...ExtensionEvent[]] };
    result: 0;
  };
}

/** The name of a documented method. */
export type MethodName = keyof Methods;

/** The params of method `M`: as in {@link Methods}, or any params for another method. */
export type ParamsOf<M extends string> = M extends MethodName ? Methods[M]["params"] : Params;

/** The result of method `M`: as in {@link Methods}, or `unknown` for another method. */
export type ResultOf<M extends string> = M extends MethodName ? Methods[M]["result"] : unknown;

/** `request()`'s arguments after the method: params are required where the method needs some. */
export type RequestArgs<M extends string> = M extends MethodName
  ? readonly [] extends Methods[M]["params"]
    ? [params?: Methods[M]["params"], options?: RequestOptions]
    : [params: Methods[M]["params"], options?: RequestOptions]
  : [params?: Params, options?: RequestOptions];

/** Options of one request. */
export interface RequestOptions {
  /**
   * Milliseconds to wait for this reply (then it rejects with {@link TimeoutError});
   * default the client's `requestTimeoutMs`. `Infinity` waits as long as the connection
   * lasts.
   */
  timeoutMs?: number;
  /**
   * Stops waiting when aborted: the promise rejects with `signal.reason` (an `AbortError`
   * unless the signal was given another reason). A request already sent may still be
   * carried out by the server.
   */
  signal?: AbortSignal;
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

/** Not connected, the connection closed before the reply came, or connecting failed. */
export class ConnectionError extends Error {
  /** Why connecting failed, where the client can tell. */
  readonly cause?: ConnectionCause;
  constructor(message: string, cause?: ConnectionCause) {
    super(message);
    this.name = "ConnectionError";
    if (cause !== undefined) this.cause = cause;
  }
}

/** Options of {@link BapiwsClient}. */
export interface ClientOptions {
  /** The server. Default `ws://127.0.0.1:9898`. */
  url?: string;
  /** Backend to Init on every (re)connection; default: the server's default. */
  backend?: string;
  /** Milliseconds to wait for each reply (and for each keep-alive). Default 10000. */
  requestTimeoutMs?: number;
  /**
   * Milliseconds a connection attempt may take, from creating the socket until it opens;
   * then the attempt counts as failed. Not while the browser's Local Network Access
   * permission is `prompt`: the user may be reading the prompt. Default 10000.
   */
  connectTimeoutMs?: number;
  /**
   * Milliseconds an attempt may wait, while the permission is `prompt`, before the client
   * reports `permission-needed` (the browser is most likely showing its prompt; a
   * connection on the same machine opens or fails well within this). Default 1000.
   */
  promptHintMs?: number;
  /**
   * Milliseconds between keep-alive GetState calls; 0 turns keep-alive off. A keep-alive
   * without a reply within `requestTimeoutMs` closes the connection (and reconnects).
   * Default 60000.
   */
  keepAliveMs?: number;
  /** Reconnect when the connection drops or an attempt fails. Default true. */
  reconnect?: boolean;
  /** First reconnect delay. Default 500. */
  minBackoffMs?: number;
  /** Longest reconnect delay. Default 30000. */
  maxBackoffMs?: number;
  /**
   * A WebSocket implementation, where there is no global one: for example `ws`'s
   * `WebSocket` class in Node 20.
   */
  WebSocket?: WebSocketConstructor;
  /**
   * The Permissions API the client reads the Local Network Access permission from; default
   * `navigator.permissions` where there is one; null: none.
   */
  permissions?: PermissionsLike | null;
  /**
   * The fetch the client asks the server's `/health` with after a failed attempt, to tell
   * `unreachable` from `origin-refused`; default the global `fetch`; null: none.
   */
  fetch?: FetchLike | null;
}

/** The part of a `PermissionStatus` the client uses. */
export interface PermissionStatusLike {
  readonly state: string;
  addEventListener?(type: "change", listener: () => void): void;
}

/** The part of the Permissions API (`navigator.permissions`) the client uses. */
export interface PermissionsLike {
  query(descriptor: { name: string }): Promise<PermissionStatusLike>;
}

/** The part of `fetch` the client uses. */
export type FetchLike = (
  url: string,
  init: {
    mode: "cors" | "no-cors";
    cache: "no-store";
    credentials: "omit";
    signal?: AbortSignal;
  },
) => Promise<{ readonly ok: boolean; readonly status: number }>;

/**
 * An event handler property. Written as a method's type so that implementations whose
 * handlers take a richer event (the DOM's `CloseEvent`, `ws`'s `WebSocket.CloseEvent`)
 * fit: TypeScript compares a method's parameters bivariantly, also under `--strict`.
 */
export type WebSocketHandler<E> = { handle(event: E): void }["handle"] | null;

/** What the client reads from a close event. */
export interface CloseEventLike {
  readonly code?: number;
  readonly reason?: string;
}

/** What the client reads from a message event. */
export interface MessageEventLike {
  readonly data: unknown;
}

/** The part of the WebSocket API the client uses; the DOM's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: WebSocketHandler<unknown>;
  onclose: WebSocketHandler<CloseEventLike>;
  onerror: WebSocketHandler<unknown>;
  onmessage: WebSocketHandler<MessageEventLike>;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

type Listener<T> = (payload: T) => void;

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
  /** Called by requestAccess(): rejected as soon as the browser refuses without asking. */
  access?: boolean;
}

const OPEN = 1;
/** How long the /health probe after a failed attempt may take. */
const PROBE_MS = 3000;
/** setTimeout's longest delay; longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The Local Network Access permission that guards the server's address: `loopback-network`
 * for a loopback address or name, `local-network` for a private one, null for any other.
 * (Never the old name `local-network-access`: querying it crashes older Chrome renderers.)
 */
function permissionNameFor(url: string): string | null {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return null;
  }
  if (/^127\./.test(host) || host === "localhost" || host.endsWith(".localhost") || host === "[::1]") {
    return "loopback-network";
  }
  if (
    /^(10|192\.168|169\.254)\./.test(host) ||
    /^172\.(1[6-9]|2\d|3[01])\./.test(host) ||
    /^\[f[cd]/.test(host) ||
    /^\[fe[89ab]/.test(host)
  ) {
    return "local-network";
  }
  return null;
}

/** What the client reads of the page it runs in; every part may be missing (Node). */
interface PageGlobals {
  location?: { protocol?: string; href?: string };
  navigator?: { vendor?: string; permissions?: PermissionsLike };
  window?: { top?: unknown };
  document?: {
    permissionsPolicy?: { allowsFeature?(name: string): boolean };
    featurePolicy?: { allowsFeature?(name: string): boolean };
  };
  fetch?: FetchLike;
}

const page = globalThis as unknown as PageGlobals;

/** In an iframe: whether its permissions policy allows `name`; undefined elsewhere. */
function frameAllows(name: string): boolean | undefined {
  try {
    if (!page.window || page.window.top === page.window) return undefined;
    const policy = page.document?.permissionsPolicy ?? page.document?.featurePolicy;
    return typeof policy?.allowsFeature === "function" ? policy.allowsFeature(name) : undefined;
  } catch {
    return undefined;
  }
}

/** The server's `/health` for a `ws://` or `wss://` URL. */
function healthUrl(url: string): string | null {
  try {
    const u = new URL(url);
    u.protocol = u.protocol === "wss:" ? "https:" : "http:";
    u.pathname = "/health";
    u.search = "";
    u.hash = "";
    return u.href;
  } catch {
    return null;
  }
}

/** A connection to a bapiws server. */
export class BapiwsClient {
  private readonly url: string;
  private backend: string | undefined;
  /** The extension notifications subscribed to, subscribed again on every reconnect. */
  private readonly subscribed = new Set<ExtensionEvent>();
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly promptHintMs: number;
  private readonly keepAliveMs: number;
  private readonly reconnect: boolean;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly Socket: WebSocketConstructor;
  private readonly permissions: PermissionsLike | null;
  private readonly fetcher: FetchLike | null;
  /** The Local Network Access permission guarding the server's address, if any. */
  private readonly permissionName: string | null;
  /** The permission's live status, once asked for; resolves to null where there is none. */
  private permissionStatus: Promise<PermissionStatusLike | null> | null = null;
  /** Why the client waits without retrying (for the permission to change, or requestAccess()). */
  private held: { cause: ConnectionCause; why: string } | null = null;
  /**
   * Counts attempts started: the asynchronous steps of an attempt (reading the permission,
   * finding out why it failed) do nothing once another attempt has started.
   */
  private step = 0;
  /** Waits, while the permission is `prompt`, to report `permission-needed`. */
  private promptTimer: ReturnType<typeof setTimeout> | null = null;
  /** Whether the current attempt waited on the permission prompt. */
  private prompted = false;
  /** The socket of the current attempt or connection; null while waiting or closed. */
  private ws: WebSocketLike | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<Listener<never>>>();
  private keepAliveTimer: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private current: ConnectionState = "closed";
  /** The callers of `connect()` waiting for the connection to open. */
  private waiters: Waiter[] = [];
  /**
   * Counts connect() starts and stops, so that code after emitting an event can tell
   * whether a listener closed (or closed and reconnected) the client meanwhile.
   */
  private generation = 0;

  constructor(options: ClientOptions = {}) {
    this.url = options.url ?? "ws://127.0.0.1:9898";
    this.backend = options.backend;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10000;
    this.promptHintMs = options.promptHintMs ?? 1000;
    this.keepAliveMs = options.keepAliveMs ?? 60000;
    this.reconnect = options.reconnect ?? true;
    this.minBackoffMs = options.minBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 30000;
    const Socket =
      options.WebSocket ??
      (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Socket) {
      throw new Error(
        'no WebSocket implementation: this runtime has no global WebSocket (Node 20 without --experimental-websocket); ' +
          'pass one, e.g. the "ws" package: import WebSocket from "ws"; new BapiwsClient({ WebSocket })',
      );
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
    const onLoopback =
      page.location?.protocol === "file:" ||
      (here !== undefined && permissionNameFor(here) === "loopback-network");
    this.permissionName = onLoopback ? null : permissionNameFor(this.url);
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.current;
  }

  /**
   * Connects (and Inits the configured backend). Resolves once the connection is open;
   * with `reconnect`, keeps trying until it is. Rejects with {@link ConnectionError} when
   * an attempt fails without `reconnect`, or when `close()` is called first; with
   * {@link RpcError} when the server refuses the configured backend's Init.
   */
  connect(): Promise<void> {
    if (this.current === "open") return Promise.resolve();
    const opened = new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
    if (this.current === "closed") this.start();
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
  requestAccess(): Promise<void> {
    if (this.current === "open") return Promise.resolve();
    const held = this.held;
    if (held && (held.cause === "permission-denied" || held.cause === "frame-not-allowed")) {
      return Promise.reject(new ConnectionError(held.why, held.cause));
    }
    const opened = new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject, access: true });
    });
    if (this.current === "closed") {
      this.start();
    } else if (this.ws === null) {
      // Waiting: for a retry's delay, for a permission, or to find out why an attempt
      // failed. Try now. (With a socket, an attempt is under way already.)
      this.clearRetryTimer();
      this.startAttempt();
    }
    return opened;
  }

  /** From closed: state `connecting`, the first attempt. */
  private start(): void {
    this.attempt = 0;
    this.held = null;
    const generation = ++this.generation;
    this.setState("connecting");
    if (generation === this.generation) this.startAttempt();
  }

  /**
   * Closes the connection for good: no reconnect. Pending requests, and a `connect()`
   * still waiting, reject with {@link ConnectionError}.
   */
  close(): void {
    if (this.current === "closed") return;
    this.stop(
      new ConnectionError(`close() was called before the connection to ${this.url} opened`),
      "the client closed the connection",
    );
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
  async init(backend?: string, options?: RequestOptions): Promise<void> {
    await this.request("Init", backend === undefined ? [] : [backend], options);
    this.backend = backend;
  }

  /** The phone's state. */
  getState(options?: RequestOptions): Promise<PhoneState> {
    return this.request("GetState", [], options);
  }

  /** Calls a number (digits with an optional leading +; spaces and -.() are ignored). */
  async callOut(number: string, options?: RequestOptions): Promise<void> {
    await this.request("CallOut", [number], options);
  }

  /** Ends the active call, or the call `callId` (extension). */
  async hangUp(callId?: string, options?: RequestOptions): Promise<void>;
  async hangUp(options?: RequestOptions): Promise<void>;
  async hangUp(a?: string | RequestOptions, b?: RequestOptions): Promise<void> {
    const [callId, options] = callArgs(a, b);
    await this.request("HangUp", callId === undefined ? [] : [callId], options);
  }

  /** Answers the latest ringing inbound call, or the call `callId` (extension). */
  async answer(callId?: string, options?: RequestOptions): Promise<void>;
  async answer(options?: RequestOptions): Promise<void>;
  async answer(a?: string | RequestOptions, b?: RequestOptions): Promise<void> {
    const [callId, options] = callArgs(a, b);
    await this.request("Answer", callId === undefined ? [] : [callId], options);
  }

  /**
   * Extension: puts the call `callId` on hold; without it, the single connected call
   * (`-32002` when none, `-32007` with the candidate ids in `data` when several).
   */
  async hold(callId?: string, options?: RequestOptions): Promise<void> {
    await this.request("Call.Hold", callId === undefined ? [] : [callId], options);
  }

  /** Extension: resumes the call `callId`; without it, the single held call. */
  async resume(callId?: string, options?: RequestOptions): Promise<void> {
    await this.request("Call.Resume", callId === undefined ? [] : [callId], options);
  }

  /**
   * Extension: blind transfer: the far end of the call `callId` (without it, the single
   * connected call) is asked to call `number`.
   */
  async transfer(number: string, callId?: string, options?: RequestOptions): Promise<void> {
    await this.request("Call.Transfer", callId === undefined ? [number] : [number, callId], options);
  }

  /**
   * Extension: attended transfer: the far end of the call `callId` (connected or held) is
   * connected to the far end of the call `targetCallId`, and both calls end here. Not on
   * baresip (`-32601`).
   */
  async transferTo(callId: string, targetCallId: string, options?: RequestOptions): Promise<void> {
    await this.request("Call.Transfer", { callId, targetCallId }, options);
  }

  /** Extension: sends DTMF digits (1 to 32 of `0-9 * # A-D`) on a connected call. */
  async sendDtmf(digits: string, callId?: string, options?: RequestOptions): Promise<void> {
    await this.request("Call.SendDtmf", callId === undefined ? [digits] : [digits, callId], options);
  }

  /** Extension: mutes the microphone. */
  async mute(options?: RequestOptions): Promise<void> {
    await this.request("Call.Mute", [], options);
  }

  /** Extension: unmutes the microphone. */
  async unmute(options?: RequestOptions): Promise<void> {
    await this.request("Call.Unmute", [], options);
  }

  /**
   * Extension: this connection receives these notifications (`CallHeld`, `CallResumed`,
   * `CallTransferred`, `MuteChanged`, `CallHeldByFarEnd`, `CallResumedByFarEnd`) from now on, and again after every reconnect.
   */
  async subscribe(...names: [ExtensionEvent, ...ExtensionEvent[]]): Promise<void> {
    await this.request("Events.Subscribe", names);
    for (const name of names) this.subscribed.add(name);
  }

  /** The active calls. */
  async getActiveCalls(options?: RequestOptions): Promise<ActiveCall[]> {
    return parseActiveCalls(await this.request("GetActiveCalls", [], options));
  }

  /** The simulated phone's controls (`Sim.*`; only on the `sim` backend). */
  readonly sim = {
    incomingCall: (number: string): Promise<string> =>
      this.request("Sim.IncomingCall", [number]),
    queueCall: (number: string, queueNumber = "", queueName?: string): Promise<string> =>
      this.request(
        "Sim.QueueCall",
        queueName === undefined ? [number, queueNumber] : [number, queueNumber, queueName],
      ),
    remoteAnswer: async (callId?: string): Promise<void> => {
      await this.request("Sim.RemoteAnswer", callId === undefined ? [] : [callId]);
    },
    remoteHangUp: async (callId?: string, reason?: string): Promise<void> => {
      const params: { callId?: string; reason?: string } = {};
      if (callId !== undefined) params.callId = callId;
      if (reason !== undefined) params.reason = reason;
      await this.request("Sim.RemoteHangUp", params);
    },
    setAvailability: async (availability: Availability): Promise<void> => {
      await this.request("Sim.SetAvailability", [availability]);
    },
    setOffline: async (): Promise<void> => {
      await this.request("Sim.SetOffline", []);
    },
    setOnline: async (): Promise<void> => {
      await this.request("Sim.SetOnline", []);
    },
  };

  /**
   * Sends a request and resolves with its result. A documented method's params and
   * result are typed ({@link Methods}): `request("GetState")` is `Promise<PhoneState>`;
   * any other method takes any params and resolves with `unknown`. Rejects with
   * {@link RpcError} (the server's error), {@link TimeoutError}, {@link ConnectionError}
   * (not open, or the connection closed first), or the abort signal's reason.
   */
  request<M extends string>(method: M, ...args: RequestArgs<M>): Promise<ResultOf<M>> {
    const [params, options] = args as [Params | undefined, RequestOptions | undefined];
    const ws = this.ws;
    if (!ws || this.current !== "open" || ws.readyState !== OPEN) {
      return Promise.reject(new ConnectionError(`${method}: not connected to ${this.url}`));
    }
    return this.call(ws, method, params ?? [], options ?? {}) as Promise<ResultOf<M>>;
  }

  private call(
    ws: WebSocketLike,
    method: string,
    params: Params,
    { timeoutMs = this.requestTimeoutMs, signal }: RequestOptions,
  ): Promise<unknown> {
    if (!(timeoutMs > 0)) {
      return Promise.reject(
        new RangeError(`${method}: timeoutMs must be above 0, not ${timeoutMs}`),
      );
    }
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        done();
        reject(abortReason(signal));
      };
      const timer =
        timeoutMs <= MAX_TIMER_MS
          ? setTimeout(() => {
              done();
              reject(new TimeoutError(method, timeoutMs));
            }, timeoutMs)
          : null;
      const done = () => {
        if (timer !== null) clearTimeout(timer);
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
      } catch (e) {
        done();
        reject(new ConnectionError(`${method}: cannot send: ${messageOf(e)}`));
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

  private setState(state: ConnectionState, error?: string, cause?: ConnectionCause): void {
    this.current = state;
    const event: ClientEvents["connection"] = { state, attempt: this.attempt };
    if (error !== undefined) event.error = error;
    if (cause !== undefined) event.cause = cause;
    this.emit("connection", event);
  }

  /** The permission's state now, asking the browser the first time. */
  private async permissionState(): Promise<AttemptFacts["permission"]> {
    if (!this.permissionStatus) {
      const permissions = this.permissions;
      const name = this.permissionName;
      this.permissionStatus =
        permissions && name
          ? Promise.resolve()
              .then(() => permissions.query({ name }))
              .then(
                (status) => {
                  status.addEventListener?.("change", () => this.onPermissionChange());
                  return status;
                },
                // A browser without this permission rejects the name: nothing to read.
                () => null,
              )
          : Promise.resolve(null);
    }
    const state = (await this.permissionStatus)?.state;
    return state === "granted" || state === "denied" || state === "prompt" ? state : "unsupported";
  }

  /** The user or an administrator changed the permission: a waiting client tries again. */
  private onPermissionChange(): void {
    if (this.held && this.current !== "closed" && this.current !== "open" && this.ws === null) {
      this.startAttempt();
    }
  }

  /** Opens a socket: one connection attempt. */
  private startAttempt(): void {
    const step = ++this.step;
    this.held = null;
    this.prompted = false;
    let ws: WebSocketLike;
    try {
      ws = new this.Socket(this.url);
    } catch (e) {
      const why = `cannot connect to ${this.url}: ${messageOf(e)}`;
      const thrown = (e as { name?: unknown } | null)?.name;
      void this.diagnose(typeof thrown === "string" ? thrown : undefined).then((cause) => {
        if (step !== this.step || this.current === "closed") return;
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
      if (this.ws !== ws || step !== this.step || permission !== "prompt") return;
      this.clearConnectTimer();
      this.promptTimer = setTimeout(() => {
        this.promptTimer = null;
        if (this.ws !== ws) return;
        this.prompted = true;
        this.setState(this.current, undefined, "permission-needed");
      }, this.promptHintMs);
    });
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.onMessage(ev.data);
    };
    let opened = false;
    // Some implementations (Node 20's) fire only `error` when connecting fails, others
    // `error` then `close`: whichever comes first ends the attempt, the other is ignored.
    ws.onerror = (ev) => {
      // The DOM's error event says nothing; ws's and undici's carry a message.
      const detail = (ev as { message?: unknown } | null)?.message;
      const why = typeof detail === "string" && detail ? `: ${detail}` : "";
      this.endAttempt(ws, `connection to ${this.url} failed${why}`, !opened);
    };
    ws.onclose = (ev) => {
      const code = ev?.code;
      const why = code ? `closed (${code}${ev.reason ? `: ${ev.reason}` : ""})` : "closed";
      this.endAttempt(ws, opened ? why : `connection to ${this.url} failed: ${why}`, !opened);
    };
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.clearConnectTimer();
      void this.onOpen(ws);
    };
  }

  /** Why an attempt failed before it opened, where the client can tell. */
  private async diagnose(thrown?: string): Promise<ConnectionCause | undefined> {
    let urlProtocol = "";
    try {
      urlProtocol = new URL(this.url).protocol;
    } catch {
      // A malformed URL: no cause of this kind.
    }
    const facts: AttemptFacts = {
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
    if (known !== undefined || thrown !== undefined) return known;
    facts.probe = await this.probe();
    return connectionCause(facts);
  }

  /**
   * Asks the server's `/health`: readable (the server answers this page), refused (an
   * opaque answer: something listens there but does not allow this origin; or a readable
   * 403 outside browsers), or nothing.
   */
  private async probe(): Promise<AttemptFacts["probe"]> {
    const fetcher = this.fetcher;
    const url = healthUrl(this.url);
    if (!fetcher || !url) return "skipped";
    const signal = () =>
      typeof AbortSignal !== "undefined" && typeof AbortSignal.timeout === "function"
        ? AbortSignal.timeout(PROBE_MS)
        : undefined;
    try {
      const r = await fetcher(url, { mode: "cors", cache: "no-store", credentials: "omit", signal: signal() });
      return r.status === 403 ? "refused" : "answered";
    } catch {
      // Nothing answered, or a browser hid the answer (CORS): ask again without reading it.
    }
    try {
      await fetcher(url, { mode: "no-cors", cache: "no-store", credentials: "omit", signal: signal() });
      return "refused";
    } catch {
      return "none";
    }
  }

  private async onOpen(ws: WebSocketLike): Promise<void> {
    // Re-applied on every connection: the backend (Init), then the extension
    // notifications subscribed to (Events.Subscribe).
    const steps: [string, Params, string][] = [];
    if (this.backend !== undefined) steps.push(["Init", [this.backend], `Init ${this.backend}`]);
    const subscribed = [...this.subscribed];
    if (subscribed.length > 0) {
      steps.push(["Events.Subscribe", subscribed, `Events.Subscribe ${subscribed.join(" ")}`]);
    }
    for (const [method, params, what] of steps) {
      try {
        await this.call(ws, method, params, {});
      } catch (e) {
        if (this.ws !== ws) return; // the attempt ended meanwhile, and that was handled
        if (e instanceof RpcError) {
          // The server refuses it: a configuration error that retrying cannot fix.
          this.stop(e, `${what}: ${e.message}`);
        } else {
          this.endAttempt(ws, `${method}: ${messageOf(e)}`, false);
        }
        return;
      }
    }
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.startKeepAlive(ws);
    this.setState("open");
    if (this.ws !== ws) return; // a listener closed the client
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /**
   * The end of a socket: it failed to connect (`failed`: before it opened), timed out,
   * closed, or stopped answering. Idempotent: only the first call for the current socket
   * counts.
   */
  private endAttempt(ws: WebSocketLike, why: string, failed: boolean): void {
    if (this.ws !== ws) return;
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
      if (step !== this.step || this.current === "closed") return;
      const text = cause ? `${why}: ${CAUSE_TEXT[cause]}` : why;
      if (cause === "mixed-content") {
        this.stop(new ConnectionError(text, cause), text, cause);
      } else if (cause === "permission-needed" || cause === "permission-denied" || cause === "frame-not-allowed") {
        this.waitForPermission(cause, text);
      } else {
        this.retry(text, cause);
      }
    });
  }

  /** After a failed attempt or a lost connection: the next attempt after a delay, or stop. */
  private retry(why: string, cause?: ConnectionCause): void {
    if (!this.reconnect) {
      this.stop(new ConnectionError(why, cause), why, cause);
      return;
    }
    this.attempt += 1;
    const generation = this.generation;
    const step = this.step;
    this.setState("reconnecting", why, cause);
    // A listener closed the client, or started an attempt (requestAccess()).
    if (generation !== this.generation || step !== this.step) return;
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
  private waitForPermission(cause: ConnectionCause, why: string): void {
    if (!this.reconnect) {
      this.stop(new ConnectionError(why, cause), why, cause);
      return;
    }
    this.attempt += 1;
    this.held = { cause, why };
    if (cause !== "permission-needed") {
      const refused = this.waiters.filter((w) => w.access);
      this.waiters = this.waiters.filter((w) => !w.access);
      for (const w of refused) w.reject(new ConnectionError(why, cause));
    }
    this.setState("reconnecting", why, cause);
  }

  /**
   * Stops for good: state `closed` (with `why`, when it is not the caller's own close()),
   * pending requests fail, and waiting `connect()` calls reject with `error`.
   */
  private stop(error: Error, why?: string, cause?: ConnectionCause): void {
    this.generation += 1;
    this.step += 1;
    this.held = null;
    this.clearRetryTimer();
    this.clearConnectTimer();
    this.stopKeepAlive();
    const ws = this.ws;
    this.ws = null;
    if (ws) closeQuietly(ws, 1000, "client closed");
    this.failPending(why ?? "the client closed the connection");
    const waiters = this.waiters.splice(0);
    this.setState("closed", why, cause);
    for (const w of waiters) w.reject(error);
  }

  private clearRetryTimer(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    if (this.promptTimer) clearTimeout(this.promptTimer);
    this.promptTimer = null;
  }

  private startKeepAlive(ws: WebSocketLike): void {
    this.stopKeepAlive();
    if (!(this.keepAliveMs > 0)) return;
    let waiting = false;
    this.keepAliveTimer = setInterval(() => {
      if (waiting || this.ws !== ws) return;
      waiting = true;
      this.call(ws, "GetState", [], {}).then(
        () => {
          waiting = false;
        },
        (e: unknown) => {
          waiting = false;
          // No reply: the connection is dead even if the socket looks open (a half-open
          // TCP connection after sleep, a stalled server). Drop it and reconnect.
          if (e instanceof TimeoutError) this.endAttempt(ws, `keep-alive: ${e.message}`, false);
        },
      );
    }, this.keepAliveMs);
  }

  private stopKeepAlive(): void {
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = null;
  }

  private failPending(why: string): void {
    for (const p of [...this.pending.values()]) {
      p.reject(new ConnectionError(`${p.method}: ${why}`));
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
function callArgs(
  a: string | RequestOptions | undefined,
  b: RequestOptions | undefined,
): [string | undefined, RequestOptions | undefined] {
  return typeof a === "object" && a !== null ? [undefined, a] : [a, b];
}

function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new Error("the request was aborted");
}

/** Closes a socket, ignoring what a socket in any state may throw. */
function closeQuietly(ws: WebSocketLike, code?: number, reason?: string): void {
  try {
    if (code === undefined) ws.close();
    else ws.close(code, reason);
  } catch {
    // Closed already, or an implementation that refuses to close while connecting.
  }
}

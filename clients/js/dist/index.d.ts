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
export type PhoneState = "Available" | "Busy" | "Away" | "BRB" | "DND" | "OffWork" | "Offline";
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
export type ConnectionCause = "permission-needed" | "permission-denied" | "frame-not-allowed" | "unreachable" | "origin-refused" | "mixed-content";
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
export declare function connectionCause(facts: AttemptFacts): ConnectionCause | undefined;
/** Every event the client emits, with its payload. */
export interface ClientEvents {
    StateChanged: {
        state: PhoneState;
    };
    CallComing: {
        callId: string;
        number: string;
    };
    QueueCallComing: {
        callId: string;
        queueCallId: string;
        callerNumber: string;
        queueNumber: string;
        queueId: string;
        queueName: string;
    };
    CallingOut: {
        callId: string;
        number: string;
    };
    CallConnected: {
        callId: string;
    };
    CallDisconnected: {
        callId: string;
        extraInfo: string;
    };
    /** Extension (after {@link BapiwsClient.subscribe}): a connected call was put on hold. */
    CallHeld: {
        callId: string;
    };
    /** Extension (after {@link BapiwsClient.subscribe}): a held call is connected again. */
    CallResumed: {
        callId: string;
    };
    /** Extension (after {@link BapiwsClient.subscribe}): a blind transfer of the call was sent. */
    CallTransferred: {
        callId: string;
        number: string;
    };
    /** Extension (after {@link BapiwsClient.subscribe}): the microphone was muted or unmuted. */
    MuteChanged: {
        muted: boolean;
    };
    /** Extension (after {@link BapiwsClient.subscribe}): the far end put the call on hold. */
    CallHeldByFarEnd: {
        callId: string;
    };
    /** Extension (after {@link BapiwsClient.subscribe}): the far end took the call off hold. */
    CallResumedByFarEnd: {
        callId: string;
    };
    /** Every notification as received, including ones this version does not know. */
    notification: {
        method: string;
        params: unknown;
    };
    /**
     * The connection changed state, once per change: `connecting` when `connect()` starts,
     * `open` when connected (and Init done), `reconnecting` once per reconnect attempt
     * (`attempt` counts them, `error` says why the previous attempt or connection ended),
     * `closed` after `close()` or when the client gave up (`error` says why). `cause` says
     * why an attempt failed, where the client can tell; a `connecting` or `reconnecting`
     * event comes once more, in the same state, with `cause: "permission-needed"` when an
     * attempt waits on the browser's permission prompt.
     */
    connection: {
        state: ConnectionState;
        attempt: number;
        error?: string;
        cause?: ConnectionCause;
    };
}
/** The extension notifications that {@link BapiwsClient.subscribe} opts into. */
export type ExtensionEvent = "CallHeld" | "CallResumed" | "CallTransferred" | "MuteChanged" | "CallHeldByFarEnd" | "CallResumedByFarEnd";
/** Params of a method that takes an optional call id: `[]`, `[callId]` or `{ callId }`. */
export type CallIdParams = readonly [callId?: string] | {
    readonly callId?: string;
};
/** Params that are not empty: positional, or named. */
export type Params = readonly unknown[] | Readonly<Record<string, unknown>>;
/** Params of a method that takes none. */
export type NoParams = readonly [] | Readonly<Record<string, never>>;
/**
 * The documented methods (and the simulated phone's `Sim.*` methods): their params,
 * positional or named, and their results. `request()` is typed by it.
 */
export interface Methods {
    Init: {
        params: readonly [backend?: string] | {
            readonly backend?: string;
        };
        result: 0;
    };
    GetState: {
        params: NoParams;
        result: PhoneState;
    };
    CallOut: {
        params: readonly [number: string] | {
            readonly number: string;
        };
        result: 0;
    };
    HangUp: {
        params: CallIdParams;
        result: 0;
    };
    Answer: {
        params: CallIdParams;
        result: 0;
    };
    /** Six strings per call; {@link parseActiveCalls} turns them into objects. */
    GetActiveCalls: {
        params: NoParams;
        result: string[];
    };
    /** Result: the new call's id. */
    "Sim.IncomingCall": {
        params: readonly [number: string] | {
            readonly number: string;
        };
        result: string;
    };
    /** Result: the new call's id. */
    "Sim.QueueCall": {
        params: readonly [number: string, queueNumber?: string, queueName?: string] | {
            readonly number: string;
            readonly queueNumber?: string;
            readonly queueName?: string;
        };
        result: string;
    };
    "Sim.RemoteAnswer": {
        params: readonly [callId?: string] | {
            readonly callId?: string;
        };
        result: 0;
    };
    "Sim.RemoteHangUp": {
        params: readonly [callId?: string, reason?: string] | {
            readonly callId?: string;
            readonly reason?: string;
        };
        result: 0;
    };
    "Sim.SetAvailability": {
        params: readonly [availability: Availability] | {
            readonly availability: Availability;
        };
        result: 0;
    };
    "Sim.SetOffline": {
        params: NoParams;
        result: 0;
    };
    "Sim.SetOnline": {
        params: NoParams;
        result: 0;
    };
    /** Extension: puts a connected call on hold. */
    "Call.Hold": {
        params: CallIdParams;
        result: 0;
    };
    /** Extension: resumes a held call. */
    "Call.Resume": {
        params: CallIdParams;
        result: 0;
    };
    /**
     * Extension: blind transfer of a connected call to `number`, or attended transfer of
     * the call `callId` to the call `targetCallId`.
     */
    "Call.Transfer": {
        params: readonly [number: string, callId?: string] | {
            readonly number: string;
            readonly callId?: string;
        } | readonly [callId: string, targetCallId: string] | {
            readonly callId: string;
            readonly targetCallId: string;
        };
        result: 0;
    };
    /** Extension: sends DTMF (1 to 32 of `0-9 * # A-D`) on a connected call. */
    "Call.SendDtmf": {
        params: readonly [digits: string, callId?: string] | {
            readonly digits: string;
            readonly callId?: string;
        };
        result: 0;
    };
    /** Extension: mutes the microphone. */
    "Call.Mute": {
        params: NoParams;
        result: 0;
    };
    /** Extension: unmutes the microphone. */
    "Call.Unmute": {
        params: NoParams;
        result: 0;
    };
    /** Extension: this connection receives these extension notifications from now on. */
    "Events.Subscribe": {
        params: readonly [ExtensionEvent, ...ExtensionEvent[]] | {
            readonly names: readonly [ExtensionEvent, ...ExtensionEvent[]];
        };
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
export type RequestArgs<M extends string> = M extends MethodName ? readonly [] extends Methods[M]["params"] ? [params?: Methods[M]["params"], options?: RequestOptions] : [params: Methods[M]["params"], options?: RequestOptions] : [params?: Params, options?: RequestOptions];
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
export declare class RpcError extends Error {
    readonly code: number;
    readonly data: unknown;
    constructor(code: number, message: string, data?: unknown);
}
/** No reply came within the request timeout. */
export declare class TimeoutError extends Error {
    constructor(method: string, ms: number);
}
/** Not connected, the connection closed before the reply came, or connecting failed. */
export declare class ConnectionError extends Error {
    /** Why connecting failed, where the client can tell. */
    readonly cause?: ConnectionCause;
    constructor(message: string, cause?: ConnectionCause);
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
    query(descriptor: {
        name: string;
    }): Promise<PermissionStatusLike>;
}
/** The part of `fetch` the client uses. */
export type FetchLike = (url: string, init: {
    mode: "cors" | "no-cors";
    cache: "no-store";
    credentials: "omit";
    signal?: AbortSignal;
}) => Promise<{
    readonly ok: boolean;
    readonly status: number;
}>;
/**
 * An event handler property. Written as a method's type so that implementations whose
 * handlers take a richer event (the DOM's `CloseEvent`, `ws`'s `WebSocket.CloseEvent`)
 * fit: TypeScript compares a method's parameters bivariantly, also under `--strict`.
 */
export type WebSocketHandler<E> = {
    handle(event: E): void;
}["handle"] | null;
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
/** Turns GetActiveCalls' flat result into call objects. */
export declare function parseActiveCalls(result: unknown): ActiveCall[];
/** A connection to a bapiws server. */
export declare class BapiwsClient {
    private readonly url;
    private backend;
    /** The extension notifications subscribed to, subscribed again on every reconnect. */
    private readonly subscribed;
    private readonly requestTimeoutMs;
    private readonly connectTimeoutMs;
    private readonly promptHintMs;
    private readonly keepAliveMs;
    private readonly reconnect;
    private readonly minBackoffMs;
    private readonly maxBackoffMs;
    private readonly Socket;
    private readonly permissions;
    private readonly fetcher;
    /** The Local Network Access permission guarding the server's address, if any. */
    private readonly permissionName;
    /** The permission's live status, once asked for; resolves to null where there is none. */
    private permissionStatus;
    /** Why the client waits without retrying (for the permission to change, or requestAccess()). */
    private held;
    /**
     * Counts attempts started: the asynchronous steps of an attempt (reading the permission,
     * finding out why it failed) do nothing once another attempt has started.
     */
    private step;
    /** Waits, while the permission is `prompt`, to report `permission-needed`. */
    private promptTimer;
    /** Whether the current attempt waited on the permission prompt. */
    private prompted;
    /** The socket of the current attempt or connection; null while waiting or closed. */
    private ws;
    private nextId;
    private readonly pending;
    private readonly listeners;
    private keepAliveTimer;
    private connectTimer;
    private retryTimer;
    private attempt;
    private current;
    /** The callers of `connect()` waiting for the connection to open. */
    private waiters;
    /**
     * Counts connect() starts and stops, so that code after emitting an event can tell
     * whether a listener closed (or closed and reconnected) the client meanwhile.
     */
    private generation;
    constructor(options?: ClientOptions);
    /** The connection's state. */
    get state(): ConnectionState;
    /**
     * Connects (and Inits the configured backend). Resolves once the connection is open;
     * with `reconnect`, keeps trying until it is. Rejects with {@link ConnectionError} when
     * an attempt fails without `reconnect`, or when `close()` is called first; with
     * {@link RpcError} when the server refuses the configured backend's Init.
     */
    connect(): Promise<void>;
    /**
     * Connects now, and lets the browser ask the user for permission: call it from a user's
     * click (a "Connect the phone" button), for example when a `connection` event's cause is
     * `permission-needed`. Resolves once the connection is open. Rejects at once with a
     * {@link ConnectionError} whose cause is `permission-denied` or `frame-not-allowed` when
     * the browser refuses without asking (the user has to change the site's settings, or
     * the embedding page its iframe; the client keeps waiting for the permission to change);
     * otherwise as `connect()` does.
     */
    requestAccess(): Promise<void>;
    /** From closed: state `connecting`, the first attempt. */
    private start;
    /**
     * Closes the connection for good: no reconnect. Pending requests, and a `connect()`
     * still waiting, reject with {@link ConnectionError}.
     */
    close(): void;
    /** Listens to an event; returns a function that stops listening. */
    on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void;
    /** Stops listening. */
    off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void;
    /** Chooses the backend for this connection, and again after every reconnect. */
    init(backend?: string, options?: RequestOptions): Promise<void>;
    /** The phone's state. */
    getState(options?: RequestOptions): Promise<PhoneState>;
    /** Calls a number (digits with an optional leading +; spaces and -.() are ignored). */
    callOut(number: string, options?: RequestOptions): Promise<void>;
    /** Ends the active call, or the call `callId` (extension). */
    hangUp(callId?: string, options?: RequestOptions): Promise<void>;
    hangUp(options?: RequestOptions): Promise<void>;
    /** Answers the latest ringing inbound call, or the call `callId` (extension). */
    answer(callId?: string, options?: RequestOptions): Promise<void>;
    answer(options?: RequestOptions): Promise<void>;
    /**
     * Extension: puts the call `callId` on hold; without it, the single connected call
     * (`-32002` when none, `-32007` with the candidate ids in `data` when several).
     */
    hold(callId?: string, options?: RequestOptions): Promise<void>;
    /** Extension: resumes the call `callId`; without it, the single held call. */
    resume(callId?: string, options?: RequestOptions): Promise<void>;
    /**
     * Extension: blind transfer: the far end of the call `callId` (without it, the single
     * connected call) is asked to call `number`.
     */
    transfer(number: string, callId?: string, options?: RequestOptions): Promise<void>;
    /**
     * Extension: attended transfer: the far end of the call `callId` (connected or held) is
     * connected to the far end of the call `targetCallId`, and both calls end here. Not on
     * baresip (`-32601`).
     */
    transferTo(callId: string, targetCallId: string, options?: RequestOptions): Promise<void>;
    /** Extension: sends DTMF digits (1 to 32 of `0-9 * # A-D`) on a connected call. */
    sendDtmf(digits: string, callId?: string, options?: RequestOptions): Promise<void>;
    /** Extension: mutes the microphone. */
    mute(options?: RequestOptions): Promise<void>;
    /** Extension: unmutes the microphone. */
    unmute(options?: RequestOptions): Promise<void>;
    /**
     * Extension: this connection receives these notifications (`CallHeld`, `CallResumed`,
     * `CallTransferred`, `MuteChanged`, `CallHeldByFarEnd`, `CallResumedByFarEnd`) from now on, and again after every reconnect.
     */
    subscribe(...names: [ExtensionEvent, ...ExtensionEvent[]]): Promise<void>;
    /** The active calls. */
    getActiveCalls(options?: RequestOptions): Promise<ActiveCall[]>;
    /** The simulated phone's controls (`Sim.*`; only on the `sim` backend). */
    readonly sim: {
        incomingCall: (number: string) => Promise<string>;
        queueCall: (number: string, queueNumber?: string, queueName?: string) => Promise<string>;
        remoteAnswer: (callId?: string) => Promise<void>;
        remoteHangUp: (callId?: string, reason?: string) => Promise<void>;
        setAvailability: (availability: Availability) => Promise<void>;
        setOffline: () => Promise<void>;
        setOnline: () => Promise<void>;
    };
    /**
     * Sends a request and resolves with its result. A documented method's params and
     * result are typed ({@link Methods}): `request("GetState")` is `Promise<PhoneState>`;
     * any other method takes any params and resolves with `unknown`. Rejects with
     * {@link RpcError} (the server's error), {@link TimeoutError}, {@link ConnectionError}
     * (not open, or the connection closed first), or the abort signal's reason.
     */
    request<M extends string>(method: M, ...args: RequestArgs<M>): Promise<ResultOf<M>>;
    private call;
    private emit;
    private setState;
    /** The permission's state now, asking the browser the first time. */
    private permissionState;
    /** The user or an administrator changed the permission: a waiting client tries again. */
    private onPermissionChange;
    /** Opens a socket: one connection attempt. */
    private startAttempt;
    /** Why an attempt failed before it opened, where the client can tell. */
    private diagnose;
    /**
     * Asks the server's `/health`: readable (the server answers this page), refused (an
     * opaque answer: something listens there but does not allow this origin; or a readable
     * 403 outside browsers), or nothing.
     */
    private probe;
    private onOpen;
    /**
     * The end of a socket: it failed to connect (`failed`: before it opened), timed out,
     * closed, or stopped answering. Idempotent: only the first call for the current socket
     * counts.
     */
    private endAttempt;
    /** After a failed attempt or a lost connection: the next attempt after a delay, or stop. */
    private retry;
    /**
     * The browser refuses, or waits for the user: no retry loop. The client tries again when
     * the permission changes, or when requestAccess() is called (unless the browser refuses
     * without asking).
     */
    private waitForPermission;
    /**
     * Stops for good: state `closed` (with `why`, when it is not the caller's own close()),
     * pending requests fail, and waiting `connect()` calls reject with `error`.
     */
    private stop;
    private clearRetryTimer;
    private clearConnectTimer;
    private startKeepAlive;
    private stopKeepAlive;
    private failPending;
    private onMessage;
    private dispatch;
    private notify;
}
export {};

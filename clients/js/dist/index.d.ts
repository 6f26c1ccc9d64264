/**
 * bapiws-client: drive the phone on the user's workstation from a web page (or Node),
 * through a bapiws / EnreachClientAPI server, over WebSocket JSON-RPC 2.0.
 *
 * It handles what every integration needs: matching replies to requests, a timeout per
 * request, a timeout per connection attempt, keep-alive that notices a dead connection,
 * reconnecting with backoff and jitter, and re-applying Init after a reconnect. No runtime
 * dependencies.
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
    /** Every notification as received, including ones this version does not know. */
    notification: {
        method: string;
        params: unknown;
    };
    /**
     * The connection changed state, once per change: `connecting` when `connect()` starts,
     * `open` when connected (and Init done), `reconnecting` once per reconnect attempt
     * (`attempt` counts them, `error` says why the previous attempt or connection ended),
     * `closed` after `close()` or when the client gave up (`error` says why).
     */
    connection: {
        state: ConnectionState;
        attempt: number;
        error?: string;
    };
}
/** The extension notifications that {@link BapiwsClient.subscribe} opts into. */
export type ExtensionEvent = "CallHeld" | "CallResumed" | "CallTransferred" | "MuteChanged";
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
    /** Extension: blind transfer of a connected call to `number`. */
    "Call.Transfer": {
        params: readonly [number: string, callId?: string] | {
            readonly number: string;
            readonly callId?: string;
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
    constructor(message: string);
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
     * then the attempt counts as failed. Default 10000.
     */
    connectTimeoutMs?: number;
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
}
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
    private readonly keepAliveMs;
    private readonly reconnect;
    private readonly minBackoffMs;
    private readonly maxBackoffMs;
    private readonly Socket;
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
    /** Extension: sends DTMF digits (1 to 32 of `0-9 * # A-D`) on a connected call. */
    sendDtmf(digits: string, callId?: string, options?: RequestOptions): Promise<void>;
    /** Extension: mutes the microphone. */
    mute(options?: RequestOptions): Promise<void>;
    /** Extension: unmutes the microphone. */
    unmute(options?: RequestOptions): Promise<void>;
    /**
     * Extension: this connection receives these notifications (`CallHeld`, `CallResumed`,
     * `CallTransferred`, `MuteChanged`) from now on, and again after every reconnect.
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
    /** Opens a socket: one connection attempt. */
    private startAttempt;
    private onOpen;
    /**
     * The end of a socket: it failed to connect, timed out, closed, or stopped answering.
     * Idempotent: only the first call for the current socket counts.
     */
    private endAttempt;
    /**
     * Stops for good: state `closed` (with `why`, when it is not the caller's own close()),
     * pending requests fail, and waiting `connect()` calls reject with `error`.
     */
    private stop;
    private clearConnectTimer;
    private startKeepAlive;
    private stopKeepAlive;
    private failPending;
    private onMessage;
    private dispatch;
    private notify;
}
export {};

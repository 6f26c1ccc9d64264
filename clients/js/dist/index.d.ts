/**
 * bapiws-client: drive the phone on the user's workstation from a web page (or Node),
 * through a bapiws / EnreachClientAPI server, over WebSocket JSON-RPC 2.0.
 *
 * It handles what every integration needs: matching replies to requests, a timeout per
 * request, keep-alive, reconnecting with backoff and jitter, and re-applying Init after a
 * reconnect. No runtime dependencies.
 */
/** What GetState reports and StateChanged carries. */
export type PhoneState = "Available" | "Busy" | "Away" | "BRB" | "DND" | "OffWork" | "Offline";
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
    /** Every notification as received, including ones this version does not know. */
    notification: {
        method: string;
        params: unknown;
    };
    /** The connection changed state; `attempt` counts reconnect attempts. */
    connection: {
        state: ConnectionState;
        attempt: number;
        error?: string;
    };
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
/** The connection closed before the reply came. */
export declare class ConnectionError extends Error {
    constructor(message: string);
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
    onclose: ((ev: {
        code?: number;
        reason?: string;
    }) => void) | null;
    onerror: ((ev: unknown) => void) | null;
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
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
    private readonly requestTimeoutMs;
    private readonly keepAliveMs;
    private readonly reconnect;
    private readonly minBackoffMs;
    private readonly maxBackoffMs;
    private readonly Socket;
    private ws;
    private nextId;
    private readonly pending;
    private readonly listeners;
    private keepAliveTimer;
    private retryTimer;
    private attempt;
    private stopped;
    private current;
    private opened;
    private resolveOpened;
    constructor(options?: ClientOptions);
    /** The connection's state. */
    get state(): ConnectionState;
    /**
     * Connects (and Inits the configured backend). Resolves once the connection is open;
     * with `reconnect`, keeps trying until it is.
     */
    connect(): Promise<void>;
    /** Closes the connection for good: no reconnect. Pending requests fail. */
    close(): void;
    /** Listens to an event; returns a function that stops listening. */
    on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void;
    /** Stops listening. */
    off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void;
    /** Chooses the backend for this connection, and again after every reconnect. */
    init(backend?: string): Promise<void>;
    /** The phone's state. */
    getState(): Promise<PhoneState>;
    /** Calls a number (digits with an optional leading +; spaces and -.() are ignored). */
    callOut(number: string): Promise<void>;
    /** Ends the active call. */
    hangUp(): Promise<void>;
    /** Answers the latest ringing inbound call. */
    answer(): Promise<void>;
    /** The active calls. */
    getActiveCalls(): Promise<ActiveCall[]>;
    /** The simulated phone's controls (`Sim.*`; only on the `sim` backend). */
    readonly sim: {
        incomingCall: (number: string) => Promise<string>;
        queueCall: (number: string, queueNumber?: string, queueName?: string) => Promise<string>;
        remoteAnswer: (callId?: string) => Promise<void>;
        remoteHangUp: (callId?: string, reason?: string) => Promise<void>;
        setAvailability: (availability: Exclude<PhoneState, "Offline">) => Promise<void>;
        setOffline: () => Promise<void>;
        setOnline: () => Promise<void>;
    };
    /** Sends any request and resolves with its result (rejects with RpcError). */
    request(method: string, params?: unknown[] | Record<string, unknown>): Promise<unknown>;
    private emit;
    private setState;
    private open;
    private onOpen;
    private scheduleRetry;
    private startKeepAlive;
    private stopKeepAlive;
    private failPending;
    private onMessage;
    private dispatch;
    private notify;
}
export {};

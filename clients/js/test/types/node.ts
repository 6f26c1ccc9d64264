// Under `tsc --strict`, for Node: ws's WebSocket class fits the client's WebSocket option,
// however it is imported.
import WebSocket, { WebSocket as NamedWebSocket } from "ws";
import { BapiwsClient, type WebSocketConstructor, type WebSocketLike } from "bapiws-client";

new BapiwsClient({ WebSocket });
new BapiwsClient({ WebSocket: NamedWebSocket, url: "ws://127.0.0.1:9898", connectTimeoutMs: 5000 });
const constructor: WebSocketConstructor = WebSocket;
const socket: WebSocketLike = new WebSocket("ws://127.0.0.1:9898");
void constructor;
void socket;

// Under `tsc --strict`, for the browser (the DOM library): the global WebSocket class fits
// the client's WebSocket option, and so does a subclass of it.
import { BapiwsClient, type WebSocketConstructor, type WebSocketLike } from "bapiws-client";

new BapiwsClient({ WebSocket });
new BapiwsClient({ WebSocket: window.WebSocket, url: "ws://127.0.0.1:9898" });
class LoggingWebSocket extends WebSocket {
  override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    console.debug("->", data);
    super.send(data);
  }
}
new BapiwsClient({ WebSocket: LoggingWebSocket });
const constructor: WebSocketConstructor = WebSocket;
const socket: WebSocketLike = new WebSocket("ws://127.0.0.1:9898");
void constructor;
void socket;

// The DOM's Permissions API and fetch fit the client's options; a ConnectionError's cause
// is a ConnectionCause (also where the ES2022 library gives every Error a `cause`).
import { ConnectionError, type ConnectionCause } from "bapiws-client";
new BapiwsClient({ permissions: navigator.permissions, fetch: window.fetch });
new BapiwsClient({ permissions: null, fetch: null });
const refused = new ConnectionError("refused", "origin-refused");
const why: ConnectionCause | undefined = refused.cause;
void why;
const client = new BapiwsClient();
client.on("connection", (e) => {
  const cause: ConnectionCause | undefined = e.cause;
  void cause;
});
const asked: Promise<void> = client.requestAccess();
void asked;

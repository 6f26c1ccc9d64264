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

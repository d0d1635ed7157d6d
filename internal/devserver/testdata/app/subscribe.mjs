// Subscribes to greeting:get with Ripple's TypeScript client and prints each result on a line
// of its own, until stdin closes. Reconnecting after a restart is the client's own doing.
import { RippleClient, functionReference } from "@ripplehq/client";
import WebSocket from "ws";

const client = new RippleClient(process.argv[2], { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
client.subscribe(functionReference("greeting:get"), {}, (value) => console.log(JSON.stringify(value)), (err) => console.log("error " + err.message));
process.stdin.resume();
process.stdin.on("end", () => {
  void client.close();
  process.exit(0);
});

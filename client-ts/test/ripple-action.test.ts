// An action running on the server when the client's socket drops: RippleClient rejects it with
// CONNECTION_LOST (it may or may not finish there), reconnects, and carries on.
import { afterEach, expect, inject, it } from "vitest";
import { RippleClient, RippleError, functionReference } from "../src/index.js";
import { api, recordingWebSocket, waitFor } from "./helpers.js";

const url = inject("serverUrl");
const wait = functionReference<"action", { delayMs: number }, string>("actions:wait");
const clients: RippleClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

it("rejects an action in flight when the connection drops with CONNECTION_LOST, then works again", async () => {
  const { WebSocketClass, sockets } = recordingWebSocket();
  const client = new RippleClient(url, {
    webSocketConstructor: WebSocketClass as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  clients.push(client);
  expect(await client.action(wait, { delayMs: 0 })).toBe("waited");

  const inFlight = client.action(wait, { delayMs: 60_000 }).catch((e: unknown) => e);
  // Sent on the open socket: the server is running it.
  await waitFor(
    () => client.connectionState().inflightActions === 1 && client.connectionState().isWebSocketConnected,
    () => JSON.stringify(client.connectionState()),
  );
  sockets.at(-1)!.terminate();

  const err = await inFlight;
  expect(err).toBeInstanceOf(RippleError);
  expect((err as RippleError).code).toBe("CONNECTION_LOST");
  expect((err as RippleError).message).toMatch(/may or may not have run/);

  // The client reconnected: calls work again.
  const conversationId = await client.mutation(api.conversations.create, {});
  expect(typeof conversationId).toBe("string");
  await waitFor(() => client.connectionStatus().state === "connected", () => JSON.stringify(client.connectionStatus()));
});

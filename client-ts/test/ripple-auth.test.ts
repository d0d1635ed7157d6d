// RippleAuth (the accounts of @ripplehq/client) across access-token expiry, on a testserver
// whose tokens live 3 s: the session is refreshed before the token expires, stored, and the
// socket carries on as the same user.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { RippleAuth, RippleClient } from "../src/index.js";
import { startServer, stopServer, type RunningServer } from "./global-setup.js";
import { api, jwtClaims, waitFor } from "./helpers.js";

const serverBin = inject("serverBin");
const TTL_SECONDS = 3;
// The server accepts a token up to this long after its exp (clock skew leeway).
const SERVER_LEEWAY_SECONDS = 5;

/** localStorage's interface over a Map (Node has no localStorage). */
class MemoryStorage implements Storage {
  private items = new Map<string, string>();
  get length() {
    return this.items.size;
  }
  clear() {
    this.items.clear();
  }
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  key(i: number) {
    return [...this.items.keys()][i] ?? null;
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

describe.skipIf(!serverBin)(`RippleAuth with ${TTL_SECONDS} s access tokens`, () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(serverBin, ["--access-token-ttl", `${TTL_SECONDS}s`]);
  }, 120_000);
  afterAll(async () => {
    if (server) await stopServer(server);
  });

  it("refreshes the session before the token expires; subscriptions and mutations go on as the same user", async () => {
    const client = new RippleClient(server.url, {
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      unsavedChangesWarning: false,
      // The Convex client refreshes this long before exp (default 10 s, longer than these tokens live).
      authRefreshTokenLeewaySeconds: 1,
    });
    const storage = new MemoryStorage();
    const auth = new RippleAuth(client, { storage, refreshMarginMs: 1000 });
    try {
      const user = await auth.signUp({ email: `fay-${Date.now()}@example.com`, password: "correct horse battery staple", name: "Fay" });
      const first = auth.current.session!;
      const seen: (string | null)[] = [];
      client.subscribe(api.auth.whoami, {}, (id) => void seen.push(id));
      await waitFor(() => auth.current.isAuthenticated && seen.at(-1) === user._id, () => `whoami ${seen.at(-1)}, ${JSON.stringify(auth.current)}`);

      // Past the first token's expiry and the server's leeway: only a refreshed token works now.
      const exp = jwtClaims(first.accessToken).exp;
      await waitFor(() => Date.now() / 1000 > exp + SERVER_LEEWAY_SECONDS, () => "the first token to expire", (SERVER_LEEWAY_SECONDS + TTL_SECONDS + 5) * 1000);
      const conversationId = await client.mutation(api.conversations.create, {});
      await client.mutation(api.auth.send, { conversationId, body: "after expiry" });

      const now = auth.current.session!;
      expect(now.refreshToken).not.toBe(first.refreshToken);
      expect(jwtClaims(now.accessToken).exp).toBeGreaterThan(exp);
      expect(JSON.parse(storage.getItem("ripple.session")!).refreshToken).toBe(now.refreshToken);
      expect(auth.current.isAuthenticated).toBe(true);
      expect(seen.at(-1)).toBe(user._id);
      expect(seen).not.toContain(null); // never seen as anonymous across the refreshes
    } finally {
      auth.dispose();
      await client.close();
    }
  }, 60_000);
});

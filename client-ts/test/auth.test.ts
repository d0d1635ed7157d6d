// Ripple's accounts with the official Convex client (convex@1.48.0): sign up over HTTP, hand the
// access token to ConvexClient.setAuth with a fetcher that refreshes when asked, and check the
// client's whole token life cycle against Ripple: the server confirms the token (identity-
// dependent queries re-run), the client refreshes it before it expires (scheduled from the JWT's
// exp, see convex/dist/esm/browser/sync/authentication_manager.js), subscriptions stay live
// across expiry and reconnects, and a refused token is reported through onChange(false).
// See docs/protocol.md (Authenticate, AuthError) and docs/design.md (Auth).
import { ConvexError } from "convex/values";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { startServer, stopServer, type RunningServer } from "./global-setup";
import {
  api,
  closeClients,
  jwtClaims,
  mutate,
  newClient,
  recordingLogger,
  signUp,
  sleep,
  tokenSource,
  waitFor,
  within,
  type Message,
  type TestClient,
} from "./helpers";

const url = inject("serverUrl");
const serverBin = inject("serverBin");

afterEach(async () => {
  await closeClients();
});

/** No broken chain, nothing thrown, and nothing logged as an error except what `expected` allows. */
function expectHealthy(c: TestClient, logs?: ReturnType<typeof recordingLogger>, expected: RegExp[] = []) {
  expect(c.log.chainErrors, "transition chain seen on the wire").toEqual([]);
  expect(c.log.clientErrors.map(String), "errors thrown by the official client").toEqual([]);
  if (logs) {
    const unexpected = logs.errors.filter((e) => !expected.some((re) => re.test(e)));
    expect(unexpected, "errors the official client logged").toEqual([]);
  }
}

const authErrors = (c: TestClient) => c.log.received.filter((m) => m.type === "AuthError");

/** Transitions in which the server took a new identity: a token confirmed, or auth cleared. */
const identityChanges = (c: TestClient) =>
  c.log.received.filter((m) => m.type === "Transition" && m.endVersion.identity > m.startVersion.identity).length;

/** Subscribes and waits for the first result. */
async function watch<T>(c: TestClient, ref: any, args: Record<string, unknown>) {
  const seen: T[] = [];
  const errors: Error[] = [];
  const sub = c.client.onUpdate(
    ref,
    args,
    (v: T) => void seen.push(v),
    (e: Error) => void errors.push(e),
  );
  await waitFor(
    () => sub.getCurrentValue() !== undefined || errors.length > 0,
    () => `first result of ${String(ref?._name ?? ref)} ${JSON.stringify(args)}`,
  );
  if (errors.length) throw errors[0];
  return { current: () => sub.getCurrentValue() as T | undefined, seen, errors };
}

describe("Ripple auth with the official ConvexClient", () => {
  it("confirms a signed-up user's token: identity-dependent queries re-run as the user", async () => {
    const logs = recordingLogger();
    const c = newClient(url, { logger: logs.logger });
    const who = await watch<string | null>(c, api.auth.whoami, {});
    expect(who.current()).toBeNull();
    const conv = await mutate<string>(c, api.conversations.create, {});
    const messages = await watch<Message[]>(c, api.messages.list, { conversationId: conv });

    // Anonymous callers are refused by a function that requires auth.
    const refused = await c.client.mutation(api.auth.send, { conversationId: conv, body: "anon" }).catch((e) => e);
    expect(refused).toBeInstanceOf(ConvexError);
    expect((refused as ConvexError<any>).data.code).toBe("UNAUTHENTICATED");

    const session = await signUp(url, "Hana");
    const tokens = tokenSource(url, session);
    const changes: boolean[] = [];
    c.client.setAuth(tokens.fetchToken, (ok) => void changes.push(ok));
    await waitFor(() => who.current() === session.user._id, () => `whoami = ${who.current()}`);
    await waitFor(() => changes.length > 0, () => "onChange");
    // convex@1.48 reports true again after each confirmed refresh, which may already have come.
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.every((ok) => ok)).toBe(true);
    expect(tokens.calls.cached).toBe(1);
    // Once the server confirms the cached token, the client fetches a fresh one at once
    // (initialAuthTokenReuse is off by default), and the server confirms that too. Wait for that
    // confirmation, not for the fetch to start: clearAuth below does not cancel a token fetch in
    // flight (convex@1.48's clearAuth leaves its AuthenticationManager running), so a fresh token
    // that arrived after it would sign the socket in again.
    await waitFor(
      () => identityChanges(c) >= 2,
      () => `the server's confirmation of the fresh token; tokens ${JSON.stringify(tokens.calls)}`,
    );
    expect(tokens.calls.forced).toBe(1);
    expect(tokens.issued).toHaveLength(2);

    const id = await mutate<string>(c, api.auth.send, { conversationId: conv, body: "signed in" });
    await waitFor(
      () => messages.current()?.some((m) => m._id === id) ?? false,
      () => `messages ${JSON.stringify(messages.current())}`,
    );
    expect(who.errors).toEqual([]);
    expect(messages.errors).toEqual([]);
    expect(authErrors(c)).toEqual([]);
    // The identity version went up with each confirmed token, and the transition that reflects a
    // token says so.
    const identities = c.log.received.filter((m) => m.type === "Transition").map((m) => m.endVersion.identity);
    expect(Math.max(...identities)).toBeGreaterThanOrEqual(1);

    // Signing out: clearAuth sends Authenticate {tokenType: "None"}; queries re-run anonymously.
    c.client.client.clearAuth();
    await waitFor(() => who.current() === null, () => `whoami after clearAuth = ${who.current()}`);
    const after = await c.client.mutation(api.auth.send, { conversationId: conv, body: "signed out" }).catch((e) => e);
    expect((after as ConvexError<any>).data?.code).toBe("UNAUTHENTICATED");
    // The client logs each failed mutation; the two anonymous sends above are the only ones.
    expect(logs.errors.filter((e) => e.startsWith("[CONVEX M(auth:send)]"))).toHaveLength(2);
    expectHealthy(c, logs, [/^\[CONVEX M\(auth:send\)\] sign in to do this/]);
  });

  it("reports a refused token through onChange(false) and stays usable, anonymous", async () => {
    const session = await signUp(url, "Ivo");
    const [header, payload, signature] = session.accessToken.split(".");
    const claims = jwtClaims(session.accessToken);
    // The same token claiming another subject: its signature no longer matches.
    const tampered = [
      header,
      Buffer.from(JSON.stringify({ ...claims, sub: String(Number(claims.sub) + 1000) })).toString("base64url"),
      signature,
    ].join(".");
    expect(payload).not.toBe(tampered.split(".")[1]);

    for (const bad of ["not-a-jwt", tampered]) {
      const logs = recordingLogger();
      const c = newClient(url, { logger: logs.logger });
      const who = await watch<string | null>(c, api.auth.whoami, {});
      const changes: boolean[] = [];
      let fetches = 0;
      c.client.setAuth(
        async () => {
          fetches++;
          return bad;
        },
        (ok) => void changes.push(ok),
      );
      await waitFor(() => changes.length > 0, () => `onChange for ${bad.slice(0, 20)}`);
      expect(changes).toEqual([false]);
      expect(authErrors(c).length).toBeGreaterThanOrEqual(1);
      for (const m of authErrors(c)) {
        expect(m.authUpdateAttempted).toBe(true);
        expect(m.error).not.toContain(bad.length > 20 ? bad : "\u0000");
      }
      expect(fetches).toBeGreaterThanOrEqual(1);
      // The client gives up on the token and carries on anonymously.
      const conv = await mutate<string>(c, api.conversations.create, {});
      expect(typeof conv).toBe("string");
      expect(who.current()).toBeNull();
      // The official client logs the refusal as an error ("Failed to authenticate: ...") when it
      // has no other token to try; that is the expected report here, nothing else is.
      expectHealthy(c, logs, [/^Failed to authenticate/]);
      await c.client.close();
    }
  });
});

// A server of its own whose access tokens live 3 s, so a token expires within the test.
const SHORT_TTL_SECONDS = 3;
// The server accepts a token up to this long after its exp (clock skew leeway).
const SERVER_LEEWAY_SECONDS = 5;
const externalShortTTL = process.env.RIPPLE_TEST_SHORT_TTL_SERVER_URL;
const canRunShortTTL = Boolean(serverBin || externalShortTTL);

describe.skipIf(!canRunShortTTL)(`access tokens that expire mid-session (--access-token-ttl ${SHORT_TTL_SECONDS}s)`, () => {
  let server: RunningServer | null = null;
  let shortUrl = externalShortTTL ?? "";

  beforeAll(async () => {
    if (!externalShortTTL) {
      server = await startServer(serverBin, ["--access-token-ttl", `${SHORT_TTL_SECONDS}s`]);
      shortUrl = server.url;
    }
  }, 120_000);

  afterAll(async () => {
    if (server) await stopServer(server);
  });

  it("refreshes the token before it expires; subscriptions and mutations carry on; no error surfaces", async () => {
    const logs = recordingLogger();
    // The client refreshes `authRefreshTokenLeewaySeconds` before exp (default 10 s, longer than
    // this token lives, which would make it refetch in a tight loop): 1 s here.
    const c = newClient(shortUrl, { logger: logs.logger, authRefreshTokenLeewaySeconds: 1 });
    const session = await signUp(shortUrl, "Jun");
    const first = jwtClaims(session.accessToken);
    expect(first.exp - first.iat).toBe(SHORT_TTL_SECONDS);
    const tokens = tokenSource(shortUrl, session);
    const changes: boolean[] = [];
    c.client.setAuth(tokens.fetchToken, (ok) => void changes.push(ok));

    const who = await watch<string | null>(c, api.auth.whoami, {});
    await waitFor(() => who.current() === session.user._id, () => `whoami = ${who.current()}`);
    const conv = await mutate<string>(c, api.conversations.create, {});
    const messages = await watch<Message[]>(c, api.messages.list, { conversationId: conv });
    await mutate(c, api.auth.send, { conversationId: conv, body: "before expiry" });

    // Wait until the first token is past its exp and past the server's leeway: from then on the
    // server refuses it everywhere.
    const refusedFrom = (first.exp + SERVER_LEEWAY_SECONDS + 0.5) * 1000;
    await sleep(Math.max(0, refusedFrom - Date.now()));
    const res = await fetch(`${shortUrl}/api/query`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${session.accessToken}` },
      body: JSON.stringify({ path: "auth:whoami", format: "convex_encoded_json", args: [{}] }),
    });
    expect(res.status, "the first token is refused by now").toBe(401);

    // The client has fetched new tokens on its own, on schedule, and is using a live one.
    expect(tokens.calls.forced, `forced fetches ${JSON.stringify(tokens.calls)}`).toBeGreaterThanOrEqual(3);
    expect(tokens.calls.failed).toBe(0);
    const current = jwtClaims(tokens.current().accessToken);
    expect(current.exp * 1000).toBeGreaterThan(Date.now() - 1000);
    expect(new Set(tokens.issued).size, "every refresh issued a distinct access token").toBe(tokens.issued.length);
    // ...and the server confirmed them: the identity version kept going up on the socket.
    const identities = c.log.received.filter((m) => m.type === "Transition").map((m) => m.endVersion.identity);
    expect(Math.max(...identities)).toBeGreaterThanOrEqual(3);

    // A mutation after expiry runs as the user and reaches the subscription.
    const id = await mutate<string>(c, api.auth.send, { conversationId: conv, body: "after expiry" });
    await waitFor(
      () => messages.current()?.some((m) => m._id === id) ?? false,
      () => `messages ${JSON.stringify(messages.current())}`,
    );
    expect(messages.current()!.map((m) => m.body)).toEqual(["before expiry", "after expiry"]);
    expect(who.current()).toBe(session.user._id);

    // A reconnect after expiry re-authenticates with the client's current token, which the
    // server accepts: no AuthError, same user, and subscriptions resume.
    const sockets = c.sockets.length;
    c.killSocket();
    await waitFor(() => c.sockets.length > sockets, () => "a new socket");
    const id2 = await within(
      c.client.mutation(api.auth.send, { conversationId: conv, body: "after reconnect" }),
      10_000,
      "mutation after reconnect",
      c,
    );
    await waitFor(
      () => messages.current()?.some((m) => m._id === id2) ?? false,
      () => `messages ${JSON.stringify(messages.current())}`,
    );
    expect(who.current()).toBe(session.user._id);

    expect(authErrors(c), "AuthErrors on the wire").toEqual([]);
    // convex@1.48 reports onChange(true) again after each confirmed refresh (onTransition reads
    // authState.hadAuth after scheduleTokenRefetch replaced the state); never false.
    expect(changes.length).toBeGreaterThanOrEqual(1);
    expect(changes.every((ok) => ok), `onChange ${JSON.stringify(changes)}`).toBe(true);
    expect(who.errors).toEqual([]);
    expect(messages.errors).toEqual([]);
    expect(logs.warnings.filter((w) => /auth|token/i.test(w)), "auth warnings").toEqual([]);
    expectHealthy(c, logs);
  }, 40_000);

  it("recovers when the server ends an expired token's identity: AuthError, refresh, same user", async () => {
    // A fetcher that hands back the same token when first asked for a fresh one, so the client
    // schedules no refresh (it stops refetching when a "fresh" token equals the one it has).
    // Once that token is no longer accepted, the server sends AuthError and closes the socket;
    // the official client fetches a fresh token (now really refreshed), reconnects and carries
    // on as the same user.
    const logs = recordingLogger();
    const c = newClient(shortUrl, { logger: logs.logger });
    const session = await signUp(shortUrl, "Kai");
    let current = session.accessToken;
    let forced = 0;
    let holdRefresh = true;
    const changes: boolean[] = [];
    c.client.setAuth(
      async ({ forceRefreshToken }) => {
        if (forceRefreshToken) {
          forced++;
          if (holdRefresh) return current; // the same token: the client stops refetching
          const res = await fetch(`${shortUrl}/api/auth/refresh`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ refreshToken: session.refreshToken }),
          });
          current = (await res.json()).accessToken;
        }
        return current;
      },
      (ok) => void changes.push(ok),
    );
    const who = await watch<string | null>(c, api.auth.whoami, {});
    await waitFor(() => who.current() === session.user._id, () => `whoami = ${who.current()}`);
    await waitFor(() => forced >= 1, () => "first forced fetch");

    const exp = jwtClaims(session.accessToken).exp;
    const before = authErrors(c).length;
    await sleep(Math.max(0, (exp + 1) * 1000 - Date.now()));
    holdRefresh = false;
    await waitFor(() => authErrors(c).length > before, () => "AuthError for the expired token", (SERVER_LEEWAY_SECONDS + 5) * 1000);
    await waitFor(() => current !== session.accessToken, () => "a refreshed token");
    const conv = await mutate<string>(c, api.conversations.create, {});
    const id = await mutate<string>(c, api.auth.send, { conversationId: conv, body: "recovered" });
    expect(typeof id).toBe("string");
    expect(who.current()).toBe(session.user._id);
    expect(changes.includes(false), `onChange ${JSON.stringify(changes)}`).toBe(false);
    expect(c.log.chainErrors).toEqual([]);
    expect(c.log.clientErrors.map(String)).toEqual([]);
  }, 40_000);
});

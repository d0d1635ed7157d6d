// Conformance tests: the official Convex client (convex@1.48.0, pinned) against a Ripple server
// (internal/testserver). See docs/protocol.md and docs/design.md's four promises.
import { ConvexError } from "convex/values";
import { makeFunctionReference } from "convex/server";
import { afterEach, describe, expect, inject, it } from "vitest";
import {
  api,
  closeClients,
  httpClient,
  mutate,
  newClient,
  sleep,
  waitFor,
  within,
  type Message,
  type TestClient,
} from "./helpers";

const url = inject("serverUrl");

afterEach(async () => {
  await closeClients();
});

function expectHealthy(...clients: TestClient[]) {
  for (const c of clients) {
    expect(c.log.chainErrors, "transition chain seen on the wire").toEqual([]);
    expect(c.log.clientErrors.map(String), "errors thrown by the official client").toEqual([]);
  }
}

async function newConversation(c: TestClient): Promise<string> {
  const id = await mutate<string>(c, api.conversations.create, {});
  expect(typeof id).toBe("string");
  return id;
}

/** Subscribes and waits for the first result. */
async function subscribe<T>(
  c: TestClient,
  ref: any,
  args: Record<string, unknown>,
): Promise<{ current: () => T | undefined; seen: T[]; errors: Error[]; unsubscribe: () => void }> {
  const seen: T[] = [];
  const errors: Error[] = [];
  const sub = c.client.onUpdate(
    ref,
    args,
    (v: T) => {
      seen.push(v);
    },
    (e: Error) => {
      errors.push(e);
    },
  );
  await waitFor(
    () => sub.getCurrentValue() !== undefined || errors.length > 0,
    () => `first result of ${JSON.stringify(args)}`,
  );
  if (errors.length) throw errors[0];
  return { current: () => sub.getCurrentValue() as T | undefined, seen, errors, unsubscribe: () => sub.unsubscribe() };
}

describe("official ConvexClient against Ripple", () => {
  it("follows a successful MutationResponse with a Transition at or after its ts", async () => {
    // The official client marks a successful mutation Completed when its MutationResponse
    // arrives, and resolves it only when a Transition arriving *later* has endVersion.ts >= the
    // response's ts (request_manager.js removeCompleted, called from the Transition handler).
    const c = newClient(url);
    const conv = await httpClient(url).mutation(api.conversations.create, {});
    const pending = c.client.mutation(api.messages.send, { conversationId: conv, body: "x" });
    pending.catch(() => {});
    // The client's first request on this socket has requestId 0.
    const responseIndex = () =>
      c.log.received.findIndex((m) => m.type === "MutationResponse" && m.success && m.requestId === 0);
    await waitFor(() => responseIndex() >= 0, () => "a successful MutationResponse", 5_000);
    const response = c.log.received[responseIndex()];
    const ts = (b64: string) => Buffer.from(b64, "base64").readBigUInt64LE();
    const covering = () =>
      c.log.received
        .slice(responseIndex() + 1)
        .some((m) => m.type === "Transition" && ts(m.endVersion.ts) >= ts(response.ts));
    await waitFor(covering, () => {
      const before = c.log.received
        .slice(0, responseIndex())
        .filter((m) => m.type === "Transition")
        .at(-1);
      return (
        `no Transition with endVersion.ts >= MutationResponse.ts (${response.ts}) arrived after the ` +
        `MutationResponse, so the official client never resolves the mutation; the covering ` +
        `Transition was sent before it: ${JSON.stringify(before)}`
      );
    }, 3_000);
    await within(pending, 5_000, "the mutation", c);
    expectHealthy(c);
  });

  it("reads its own writes: a resolved mutation is already in the subscription (promise 3)", async () => {
    const c = newClient(url);
    const conv = await newConversation(c);
    const list = await subscribe<Message[]>(c, api.messages.list, { conversationId: conv });
    expect(list.current()).toEqual([]);

    for (let i = 0; i < 20; i++) {
      const id = await mutate<string>(c, api.messages.send, { conversationId: conv, body: `m${i}` });
      // No waiting: the client resolves a mutation only once it has applied a transition at or
      // after the mutation's ts, so the subscription must already show it.
      const now = list.current()!;
      expect(now.map((m) => m._id)).toContain(id);
      expect(now).toHaveLength(i + 1);
      expect(now.at(-1)).toEqual({ _id: id, body: `m${i}` });
      // Callbacks run while the transition is applied, before the mutation promise resolves.
      expect(list.seen.at(-1)!.map((m) => m._id)).toContain(id);
    }
    expectHealthy(c);
  });

  it("reconnects after its socket dies mid-mutation, and the mutation runs exactly once", async () => {
    const c = newClient(url);
    const http = httpClient(url);
    const conv = await newConversation(c);
    const list = await subscribe<Message[]>(c, api.messages.list, { conversationId: conv });
    await mutate(c, api.messages.send, { conversationId: conv, body: "before" });
    const before = await http.query(api.messages.count, { conversationId: conv });
    expect(before).toBe(1);

    const pending = c.client.mutation(api.messages.slowSend, { conversationId: conv, body: "slow", delayMs: 300 });
    await sleep(100); // the server is inside pg_sleep now
    expect(c.sockets).toHaveLength(1);
    c.killSocket();

    const id = await within(pending, 15_000, "slowSend across a reconnect", c);
    expect(c.sockets.length).toBeGreaterThanOrEqual(2); // the client reconnected by itself
    expect(list.current()!.map((m) => m._id)).toContain(id);
    expect(await http.query(api.messages.count, { conversationId: conv })).toBe(before + 1);
    expect((await http.query(api.messages.list, { conversationId: conv })).filter((m) => m.body === "slow")).toHaveLength(1);

    // The subscription keeps updating after the reconnect, including from writes by others.
    const id2 = await mutate<string>(c, api.messages.send, { conversationId: conv, body: "after" });
    expect(list.current()!.map((m) => m.body)).toEqual(["before", "slow", "after"]);
    expect(list.current()!.at(-1)!._id).toBe(id2);
    const id3 = await http.mutation(api.messages.send, { conversationId: conv, body: "from http" });
    await waitFor(
      () => list.current()!.some((m) => m._id === id3),
      () => `subscription to see ${id3}: ${JSON.stringify(list.current())}`,
    );
    expect(await http.query(api.messages.count, { conversationId: conv })).toBe(before + 3);
    expectHealthy(c);
  });

  it("does not rerun a mutation still running when the client resends it after reconnecting", async () => {
    const c = newClient(url);
    const http = httpClient(url);
    const conv = await newConversation(c);
    const list = await subscribe<Message[]>(c, api.messages.list, { conversationId: conv });

    // The client reconnects after ~0.5-1.5 s; the mutation is still sleeping on the server then,
    // so the resent Mutation (same sessionId, requestId) arrives while the first run is in flight.
    const pending = c.client.mutation(api.messages.slowSend, { conversationId: conv, body: "slow", delayMs: 2500 });
    await sleep(100);
    c.killSocket();
    const id = await within(pending, 15_000, "slowSend across a reconnect", c);
    expect(c.sockets.length).toBeGreaterThanOrEqual(2);
    expect(list.current()!.map((m) => m._id)).toEqual([id]);
    await sleep(300); // give a hypothetical second run time to commit
    expect(await http.query(api.messages.count, { conversationId: conv })).toBe(1);
    expect(list.current()!.map((m) => m._id)).toEqual([id]);
    expectHealthy(c);
  });

  it("keeps the transition chain across 50 mutations, 2 clients and 4 subscriptions", async () => {
    const a = newClient(url);
    const b = newClient(url);
    const http = httpClient(url);
    const c1 = await newConversation(a);
    const c2 = await newConversation(b);

    const aList1 = await subscribe<Message[]>(a, api.messages.list, { conversationId: c1 });
    const aCount1 = await subscribe<number>(a, api.messages.count, { conversationId: c1 });
    const bList2 = await subscribe<Message[]>(b, api.messages.list, { conversationId: c2 });
    const bCount1 = await subscribe<number>(b, api.messages.count, { conversationId: c1 });

    // One snapshot per transition (promise 2): whenever client A's list of c1 changes, its count
    // of c1 (same client, same snapshot) must agree.
    const snapshotErrors: string[] = [];
    const check = a.client.onUpdate(api.messages.list, { conversationId: c1 }, (msgs) => {
      const n = aCount1.current();
      if (n !== undefined && n !== msgs.length) snapshotErrors.push(`list has ${msgs.length}, count says ${n}`);
    });

    const clients = [a, b];
    const sent: { client: number; conv: string; id: string }[] = [];
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(
        Array.from({ length: 5 }, async (_, k) => {
          const i = batch * 5 + k;
          const who = i % 2;
          const conv = i % 3 === 0 ? c2 : c1;
          const id = await mutate<string>(clients[who], api.messages.send, { conversationId: conv, body: `#${i}` });
          sent.push({ client: who, conv, id });
          // Read your writes for the subscriptions this client holds on that conversation.
          if (who === 0 && conv === c1) expect(aList1.current()!.map((m) => m._id)).toContain(id);
          if (who === 1 && conv === c2) expect(bList2.current()!.map((m) => m._id)).toContain(id);
        }),
      );
    }
    expect(sent).toHaveLength(50);

    const [want1, want2, wantCount1] = await Promise.all([
      http.query(api.messages.list, { conversationId: c1 }),
      http.query(api.messages.list, { conversationId: c2 }),
      http.query(api.messages.count, { conversationId: c1 }),
    ]);
    expect(want1.length + want2.length).toBe(50);
    expect(wantCount1).toBe(want1.length);
    await waitFor(
      () =>
        JSON.stringify(aList1.current()) === JSON.stringify(want1) &&
        aCount1.current() === wantCount1 &&
        JSON.stringify(bList2.current()) === JSON.stringify(want2) &&
        bCount1.current() === wantCount1,
      () =>
        `subscriptions to match HTTP: a.list(c1)=${aList1.current()?.length}/${want1.length} a.count(c1)=${aCount1.current()} ` +
        `b.list(c2)=${bList2.current()?.length}/${want2.length} b.count(c1)=${bCount1.current()} want ${wantCount1}`,
    );

    // No update ever went backwards: every message, once seen, stays.
    for (const sub of [aList1, bList2]) {
      for (let i = 1; i < sub.seen.length; i++) {
        const ids = new Set(sub.seen[i].map((m) => m._id));
        for (const m of sub.seen[i - 1]) expect(ids.has(m._id), `message ${m._id} disappeared`).toBe(true);
      }
    }
    for (const sub of [aCount1, bCount1]) {
      for (let i = 1; i < sub.seen.length; i++) expect(sub.seen[i]).toBeGreaterThanOrEqual(sub.seen[i - 1]);
    }
    check.unsubscribe();
    expect(snapshotErrors).toEqual([]);
    expect(a.sockets).toHaveLength(1);
    expect(b.sockets).toHaveLength(1);
    expectHealthy(a, b);
  });

  it("rejects unknown functions and bad arguments with useful errors, and stays connected", async () => {
    const c = newClient(url);
    const http = httpClient(url);
    const conv = await newConversation(c);
    const missingQuery = makeFunctionReference<"query">("nope:missing");
    const missingMutation = makeFunctionReference<"mutation">("nope:missing");

    await expect(c.client.query(missingQuery, {})).rejects.toThrow(/could not find/i);
    await expect(c.client.mutation(missingMutation, {})).rejects.toThrow(/could not find/i);
    await expect(http.query(missingQuery, {})).rejects.toThrow(/could not find/i);
    await expect(http.mutation(missingMutation, {})).rejects.toThrow(/could not find/i);

    // A subscription to an unknown function fails through onError (QueryFailed).
    const subErrors: Error[] = [];
    const sub = c.client.onUpdate(missingQuery, {}, () => {}, (e) => subErrors.push(e));
    await waitFor(() => subErrors.length > 0, () => "QueryFailed for nope:missing");
    expect(subErrors[0].message).toMatch(/could not find/i);
    sub.unsubscribe();

    // Wrong type, missing field, unknown field: the error names the field.
    const wrongType = await c.client
      .mutation(api.messages.send, { conversationId: 123 as unknown as string, body: "x" })
      .catch((e) => e);
    expect(wrongType).toBeInstanceOf(Error);
    expect(wrongType.message).toMatch(/conversationId/);
    if (wrongType instanceof ConvexError) expect(wrongType.data).toBeTruthy();

    const missing = await c.client.mutation(api.messages.send, { conversationId: conv } as any).catch((e) => e);
    expect(missing).toBeInstanceOf(Error);
    expect(missing.message).toMatch(/body/);

    const extra = await c.client
      .mutation(api.messages.send, { conversationId: conv, body: "x", color: "red" } as any)
      .catch((e) => e);
    expect(extra).toBeInstanceOf(Error);
    expect(extra.message).toMatch(/color/);

    const httpWrong = await http
      .mutation(api.messages.send, { conversationId: conv, body: 5 as unknown as string })
      .catch((e) => e);
    expect(httpWrong).toBeInstanceOf(Error);
    expect(httpWrong.message).toMatch(/body/);

    // A user-facing error raised by the function itself carries errorData (ConvexError).
    const empty = await c.client.mutation(api.messages.send, { conversationId: conv, body: "  " }).catch((e) => e);
    expect(empty).toBeInstanceOf(ConvexError);
    expect(empty.message).toMatch(/body must not be empty/);

    // Nothing was written by the failed calls, and the socket survived all of them.
    expect(await c.client.query(api.messages.count, { conversationId: conv })).toBe(0);
    const id = await mutate<string>(c, api.messages.send, { conversationId: conv, body: "ok" });
    expect(await c.client.query(api.messages.list, { conversationId: conv })).toEqual([{ _id: id, body: "ok" }]);
    expect(c.sockets).toHaveLength(1);
    expectHealthy(c);
  });
});

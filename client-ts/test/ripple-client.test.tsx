// @vitest-environment jsdom
//
// @ripplehq/client against a real `ripple serve` (the chat's functions, on its own Postgres
// schema), through the generated web/src/generated/api.ts: live queries in React, optimistic
// updates and their rollback, pagination, typed errors, the connection state across a server
// restart, and accounts (RippleAuthProvider/useAuth).
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { Component, type ReactNode } from "react";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import {
  Authenticated,
  RippleAuth,
  RippleAuthProvider,
  RippleClient,
  RippleError,
  RippleProvider,
  Unauthenticated,
  useAuth,
  useConnectionState,
  useMutation,
  usePaginatedQuery,
  useQuery,
  useQueryState,
  type AuthState,
  type ConnectionStatus,
} from "../src/index.js";
import { api } from "../../web/src/generated/api.js";
import { startRippleServe, type RippleServe } from "./ripple-serve.js";
import { signUp, type AuthSession } from "./helpers.js";

const rippleBin = inject("rippleBin");
let server: RippleServe;
const clients: RippleClient[] = [];

beforeAll(async () => {
  server = await startRippleServe(rippleBin);
}, 120_000);

afterAll(async () => {
  await server?.destroy();
});

afterEach(async () => {
  cleanup();
  localStorage.clear();
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function newClient(): RippleClient {
  // Node has no WebSocket global; jsdom's would send the test page's Origin.
  const c = new RippleClient(server.url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  clients.push(c);
  return c;
}

/**
 * A signed-in client (its token set directly from a sign-up). `ripple serve` allows 20 sign-ups
 * an hour from one address (engine/internal/auth), and this file's server is fresh per run: the
 * tests here sign up 18 users.
 */
async function signedIn(name: string): Promise<{ client: RippleClient; session: AuthSession }> {
  const session = await signUp(server.url, name);
  const client = newClient();
  client.setAuth(async () => session.accessToken);
  return { client, session };
}

/** Two users with a conversation between them; the first one's client. */
async function pair() {
  const ann = await signedIn("Ann");
  const bob = await signedIn("Bob");
  const conversationId = await ann.client.mutation(api.conversations.getOrCreateDirect, { email: bob.session.user.email });
  return { ann, bob, conversationId };
}

class Boundary extends Component<{ children: ReactNode }, { error: unknown }> {
  state = { error: null as unknown };
  static getDerivedStateFromError(error: unknown) {
    return { error };
  }
  render() {
    const e = this.state.error;
    if (e) return <p data-testid="boundary">{e instanceof RippleError ? `RippleError ${e.code}: ${e.message}` : `other: ${String(e)}`}</p>;
    return this.props.children;
  }
}

describe("hooks against ripple serve", () => {
  it("useQuery is undefined while loading, then shows each new result", async () => {
    const { ann, bob, conversationId } = await pair();
    const renders: unknown[] = [];
    function Last() {
      const list = useQuery(api.conversations.list, {});
      renders.push(list);
      const c = list?.find((x) => x._id === conversationId);
      return <p data-testid="last">{list === undefined ? "loading" : (c?.lastMessage?.body ?? "none")}</p>;
    }
    render(
      <RippleProvider client={ann.client}>
        <Last />
      </RippleProvider>,
    );
    expect(renders[0]).toBeUndefined();
    await waitFor(() => expect(screen.getByTestId("last").textContent).toBe("none"));
    // Bob writes from his own client: Ann's subscription re-runs and the component re-renders.
    await bob.client.mutation(api.messages.send, { conversationId, body: "hi Ann" });
    await waitFor(() => expect(screen.getByTestId("last").textContent).toBe("hi Ann"));
  });

  it("shows an optimistic update at once and rolls it back when the mutation fails", async () => {
    const { ann, conversationId } = await pair();
    let send!: (args: { conversationId: string; body: string }) => Promise<string>;
    function Thread() {
      const list = useQuery(api.conversations.list, {});
      send = useMutation(api.messages.send).withOptimisticUpdate((store, args) => {
        const current = store.getQuery(api.conversations.list, {});
        if (!current) return;
        store.setQuery(
          api.conversations.list,
          {},
          current.map((c) =>
            c._id === args.conversationId ? { ...c, lastMessage: { body: args.body, senderId: "me", _creationTime: Date.now(), kind: "text" } } : c,
          ),
        );
      });
      const body = list === undefined ? "loading" : (list.find((c) => c._id === conversationId)?.lastMessage?.body ?? "none");
      return <p data-testid="last">{body}</p>;
    }
    render(
      <RippleProvider client={ann.client}>
        <Thread />
      </RippleProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("last").textContent).toBe("none"));

    // An empty body is refused by the server (INVALID_ARGUMENT), after the local update showed.
    let failed!: Promise<unknown>;
    act(() => {
      failed = send({ conversationId, body: "   " }).catch((e: unknown) => e);
    });
    expect(screen.getByTestId("last").textContent).toBe("   ");
    const err = await failed;
    expect(err).toBeInstanceOf(RippleError);
    expect((err as RippleError).code).toBe("INVALID_ARGUMENT");
    expect((err as RippleError).message).not.toMatch(/CONVEX|Called by client|Request ID/);
    await waitFor(() => expect(screen.getByTestId("last").textContent).toBe("none"));

    // A good one stays, replaced by the server's own result.
    let ok!: Promise<string>;
    act(() => {
      ok = send({ conversationId, body: "kept" });
    });
    expect(screen.getByTestId("last").textContent).toBe("kept");
    await act(async () => void (await ok));
    expect(screen.getByTestId("last").textContent).toBe("kept");
  });

  it("usePaginatedQuery grows as messages arrive and as older pages load", async () => {
    const { ann, bob, conversationId } = await pair();
    for (const body of ["m1", "m2", "m3"]) await bob.client.mutation(api.messages.send, { conversationId, body });
    let loadMore!: (n: number) => void;
    function Messages() {
      const page = usePaginatedQuery(api.messages.list, { conversationId }, { initialNumItems: 2 });
      loadMore = page.loadMore;
      return (
        <p data-testid="messages" data-status={page.status}>
          {page.results.map((m) => m.body).join(",")}
        </p>
      );
    }
    render(
      <RippleProvider client={ann.client}>
        <Messages />
      </RippleProvider>,
    );
    // Newest first: the first page is the two newest.
    await waitFor(() => expect(screen.getByTestId("messages").textContent).toBe("m3,m2"));
    expect(screen.getByTestId("messages").dataset.status).toBe("CanLoadMore");
    await bob.client.mutation(api.messages.send, { conversationId, body: "m4" });
    await waitFor(() => expect(screen.getByTestId("messages").textContent).toBe("m4,m3,m2"));
    act(() => loadMore(2));
    await waitFor(() => expect(screen.getByTestId("messages").textContent).toBe("m4,m3,m2,m1"));
    await waitFor(() => expect(screen.getByTestId("messages").dataset.status).toBe("Exhausted"));
    // A new message after the pages are pinned still arrives, once.
    await bob.client.mutation(api.messages.send, { conversationId, body: "m5" });
    await waitFor(() => expect(screen.getByTestId("messages").textContent).toBe("m5,m4,m3,m2,m1"));
  });

  it("throws a query's failure to the error boundary as a RippleError, or returns it with throwOnError: false", async () => {
    const { conversationId } = await pair();
    const carol = await signedIn("Carol"); // not in the conversation
    function Thrown() {
      useQuery(api.messages.list, { conversationId, paginationOpts: { numItems: 5, cursor: null } });
      return <p>unreachable</p>;
    }
    function Returned() {
      const s = useQuery(api.messages.list, { conversationId, paginationOpts: { numItems: 5, cursor: null } }, { throwOnError: false });
      const same = useQueryState(api.messages.list, { conversationId, paginationOpts: { numItems: 5, cursor: null } });
      return <p data-testid="state">{s.status === "error" ? `${s.error.code} ${same.status}` : s.status}</p>;
    }
    const quiet = console.error;
    console.error = () => {}; // React reports caught render errors
    try {
      render(
        <RippleProvider client={carol.client}>
          <Boundary>
            <Thrown />
          </Boundary>
          <Returned />
        </RippleProvider>,
      );
      await waitFor(() => expect(screen.getByTestId("boundary").textContent).toMatch(/^RippleError (FORBIDDEN|NOT_FOUND): /));
      await waitFor(() => expect(screen.getByTestId("state").textContent).toMatch(/^(FORBIDDEN|NOT_FOUND) error$/));
    } finally {
      console.error = quiet;
    }
  });

  it("reports reconnecting while the server restarts after a crash, then connected; mutations in flight or queued run once", async () => {
    const { ann, conversationId } = await pair();
    const states: ConnectionStatus[] = [];
    function Status() {
      const s = useConnectionState();
      states.push(s);
      return <p data-testid="conn">{s.state}</p>;
    }
    render(
      <RippleProvider client={ann.client}>
        <Status />
      </RippleProvider>,
    );
    await ann.client.query(api.conversations.list, {});
    await waitFor(() => expect(screen.getByTestId("conn").textContent).toBe("connected"));

    // Sent on the open socket, then the server dies: it may or may not have committed the
    // mutation. The client resends it after reconnecting, and the server's mutation log (written
    // in the mutation's transaction) makes it run once either way.
    const inFlight = ann.client.mutation(api.messages.send, { conversationId, body: "in flight at the crash" });
    expect(ann.client.connectionState().inflightMutations).toBe(1);
    await server.kill();
    await waitFor(() => expect(screen.getByTestId("conn").textContent).toBe("reconnecting"), { timeout: 20_000 });
    const down = states.at(-1)!;
    // The browser reports no network: offline, the same outage (since unchanged); back online,
    // reconnecting again.
    const setOnline = (online: boolean) => {
      Object.defineProperty(navigator, "onLine", { configurable: true, get: () => online });
      act(() => void window.dispatchEvent(new Event(online ? "online" : "offline")));
    };
    setOnline(false);
    expect(screen.getByTestId("conn").textContent).toBe("offline");
    expect(states.at(-1)!.since).toBe(down.since);
    setOnline(true);
    expect(screen.getByTestId("conn").textContent).toBe("reconnecting");
    expect(states.at(-1)!.since).toBe(down.since);
    // Queued while the server is down, sent once it is back. (An action queued so was never
    // sent, so it is sent too; one sent before the drop fails: ripple-action.test.ts.)
    const queued = ann.client.mutation(api.messages.send, { conversationId, body: "queued while down" });
    const searched = ann.client.action(api.messages.search, { conversationId, query: "restart" });
    await server.start();
    await inFlight;
    await queued;
    expect(Array.isArray(await searched)).toBe(true);
    await waitFor(() => expect(screen.getByTestId("conn").textContent).toBe("connected"), { timeout: 30_000 });
    expect(states.at(-1)!.since.getTime()).toBeGreaterThanOrEqual(down.since.getTime());

    const page = await ann.client.query(api.messages.list, { conversationId, paginationOpts: { numItems: 10, cursor: null } });
    expect(page.page.map((m) => m.body)).toEqual(["queued while down", "in flight at the crash"]);
  }, 90_000);
});

describe("accounts: RippleAuthProvider and useAuth", () => {
  it("signs up, shows Authenticated content with the user's queries, and signs out", async () => {
    const client = newClient();
    let auth!: ReturnType<typeof useAuth>;
    function Me() {
      const me = useQuery(api.users.me, {});
      return <p data-testid="me">{me === undefined ? "loading" : (me?.name ?? "nobody")}</p>;
    }
    function Screen() {
      auth = useAuth();
      return (
        <>
          <Authenticated>
            <Me />
          </Authenticated>
          <Unauthenticated>
            <p data-testid="signed-out">signed out</p>
          </Unauthenticated>
        </>
      );
    }
    render(
      <RippleAuthProvider client={client}>
        <Screen />
      </RippleAuthProvider>,
    );
    await waitFor(() => expect(screen.getByTestId("signed-out")).toBeTruthy());
    const email = `dana-${Date.now()}@example.com`;
    await act(() => auth.signUp({ email, password: "correct horse battery staple", name: "Dana" }));
    await waitFor(() => expect(screen.getByTestId("me").textContent).toBe("Dana"));
    expect(auth.isAuthenticated).toBe(true);
    expect(JSON.parse(localStorage.getItem("ripple.session")!).user.email).toBe(email);

    // A wrong password is a RippleError with the server's code.
    await act(() => auth.signOut());
    await waitFor(() => expect(screen.getByTestId("signed-out")).toBeTruthy());
    expect(localStorage.getItem("ripple.session")).toBeNull();
    const err = await auth.signIn({ email, password: "wrong password!" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RippleError);
    expect((err as RippleError).code).toMatch(/^[A-Z_]+$/);
    expect((err as RippleError).data.status).toBe(401);
  });

  it("two tabs refreshing at once spend the refresh token once with Web Locks; without, the server's grace absorbs the race", async () => {
    // Each RippleAuth is a tab: same localStorage, own client. fetch is wrapped to count the
    // refresh requests that reach the server. The tabs are not started (deferStart): a started
    // tab's client refreshes on its own once the server confirms the stored token, which would
    // race the refreshes this test makes (the next test covers that refresh).
    const realFetch = globalThis.fetch;
    let refreshPosts = 0;
    globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      if (String(input).endsWith("/api/auth/refresh")) refreshPosts++;
      return realFetch(input, init);
    }) as typeof fetch;
    try {
      for (const withLocks of [true, false]) {
        // jsdom has no Web Locks: an exclusive lock per name, as browsers grant them, shared by
        // the "tabs" of this page.
        Object.defineProperty(navigator, "locks", { configurable: true, value: withLocks ? new ExclusiveLocks() : undefined });
        const session = await signUp(server.url, "Gus");
        localStorage.setItem("ripple.session", JSON.stringify(session));
        const a = new RippleAuth(newClient(), { deferStart: true });
        const b = new RippleAuth(newClient(), { deferStart: true });
        try {
          refreshPosts = 0;
          const [ta, tb] = await Promise.all([a.refresh(), b.refresh()]);
          expect(ta).not.toBeNull();
          expect(ta).not.toBe(session.accessToken);
          expect(tb).toBe(ta);
          expect(refreshPosts).toBe(withLocks ? 1 : 2);
          expect(a.current.session?.refreshToken).toBe(b.current.session?.refreshToken);
        } finally {
          a.dispose();
          b.dispose();
        }
      }
    } finally {
      globalThis.fetch = realFetch;
      Object.defineProperty(navigator, "locks", { configurable: true, value: undefined });
    }
  });

  it("two tabs opened at once: their clients' first refreshes spend the refresh token once with Web Locks; without, only the stored one is presented", async () => {
    // A started tab hands the stored token to its client; once the server confirms it, the
    // client asks for a fresh one at once (convex's initialAuthTokenReuse is off), so two tabs
    // opened together refresh together.
    const realFetch = globalThis.fetch;
    const presented: string[] = [];
    globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      if (String(input).endsWith("/api/auth/refresh")) presented.push(JSON.parse(String(init?.body)).refreshToken);
      return realFetch(input, init);
    }) as typeof fetch;
    try {
      for (const withLocks of [true, false]) {
        Object.defineProperty(navigator, "locks", { configurable: true, value: withLocks ? new ExclusiveLocks() : undefined });
        const session = await signUp(server.url, "Ida");
        localStorage.setItem("ripple.session", JSON.stringify(session));
        presented.length = 0;
        const a = new RippleAuth(newClient());
        const b = new RippleAuth(newClient());
        try {
          // Each tab's session changes once, when its client's refresh returns (the tab that
          // waited takes the session the other stored); nothing refreshes again for 15 minutes.
          const refreshed = (s: AuthState) => s.session !== null && s.session.refreshToken !== session.refreshToken;
          await Promise.all([until(a, refreshed), until(b, refreshed)]);
          const stored = JSON.parse(localStorage.getItem("ripple.session")!) as AuthSession;
          expect(a.current.session?.refreshToken).toBe(stored.refreshToken);
          expect(b.current.session?.refreshToken).toBe(stored.refreshToken);
          // With Web Locks the sign-up refresh token is spent once; without, both tabs may
          // present it (the server's grace answers both with the same pair), nothing else.
          if (withLocks) expect(presented).toEqual([session.refreshToken]);
          else expect(new Set(presented)).toEqual(new Set([session.refreshToken]));
        } finally {
          a.dispose();
          b.dispose();
        }
      }
    } finally {
      globalThis.fetch = realFetch;
      Object.defineProperty(navigator, "locks", { configurable: true, value: undefined });
    }
  });

  it("a tab that finds a session another tab refreshed takes it instead of spending the refresh token again", async () => {
    const session = await signUp(server.url, "Eve");
    localStorage.setItem("ripple.session", JSON.stringify(session));
    const realFetch = globalThis.fetch;
    const presented: string[] = [];
    globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      if (String(input).endsWith("/api/auth/refresh")) presented.push(JSON.parse(String(init?.body)).refreshToken);
      return realFetch(input, init);
    }) as typeof fetch;
    // Not started (deferStart): a started tab's client refreshes on its own once the server
    // confirms the stored token (previous test), so tab B would not hold the old pair when asked.
    const a = new RippleAuth(newClient(), { deferStart: true });
    const b = new RippleAuth(newClient(), { deferStart: true });
    try {
      // Tab A refreshes (its client asked it to); tab B, holding the old pair, is asked next.
      const refreshA = await a.refresh();
      expect(refreshA).not.toBe(session.accessToken);
      expect(b.current.session?.refreshToken).toBe(session.refreshToken);
      const refreshB = await b.refresh();
      expect(refreshB).toBe(refreshA);
      expect(b.current.session?.refreshToken).toBe(a.current.session?.refreshToken);
      // The refresh token was spent once, by A; both still hold a live session.
      expect(presented).toEqual([session.refreshToken]);
      expect(a.current.session).not.toBeNull();
      expect(b.current.session).not.toBeNull();
    } finally {
      globalThis.fetch = realFetch;
      a.dispose();
      b.dispose();
    }
  });

  it("without Web Locks, a refresh answered after another tab refreshed past it takes the later session instead of storing its older one", async () => {
    // No Web Locks (an old browser, or a page served over plain http, where navigator.locks does
    // not exist): tabs A and B present the same refresh token at once; the server spends it for
    // one and gives the other the same pair (grace). B's answer is slow to arrive: by then A has
    // refreshed again. B must not write its pair, already spent, over A's: the next refresh
    // from storage would present a spent token, which past the grace ends the session.
    const session = await signUp(server.url, "Fay");
    localStorage.setItem("ripple.session", JSON.stringify(session));
    const realFetch = globalThis.fetch;
    const presented: string[] = [];
    let releaseB!: () => void;
    const heldB = new Promise<void>((resolve) => (releaseB = resolve));
    globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (!String(input).endsWith("/api/auth/refresh")) return realFetch(input, init);
      const token = JSON.parse(String(init?.body)).refreshToken;
      const second = presented.push(token) === 2;
      const res = await realFetch(input, init);
      if (second) await heldB; // B's answer, delayed
      return res;
    }) as typeof fetch;
    const a = new RippleAuth(newClient(), { deferStart: true });
    const b = new RippleAuth(newClient(), { deferStart: true });
    try {
      const first = a.refresh();
      const fromB = b.refresh();
      const pair1 = await first;
      expect(presented).toEqual([session.refreshToken, session.refreshToken]);
      const pair2 = await a.refresh();
      expect(pair2).not.toBe(pair1);
      const stored = () => (JSON.parse(localStorage.getItem("ripple.session")!) as AuthSession).accessToken;
      expect(stored()).toBe(pair2);
      releaseB();
      // B got the first pair from the server, but A's later one is stored: B takes that.
      expect(await fromB).toBe(pair2);
      expect(stored()).toBe(pair2);
      expect(b.current.session?.refreshToken).toBe(a.current.session?.refreshToken);
      // The next refresh presents the live refresh token, not the spent one.
      const live = a.current.session!.refreshToken;
      expect(await b.refresh()).not.toBeNull();
      expect(presented.at(-1)).toBe(live);
    } finally {
      releaseB();
      globalThis.fetch = realFetch;
      a.dispose();
      b.dispose();
    }
  });
});

/** Resolves once pred holds for auth.current: at once, or at the change that makes it hold. */
function until(auth: RippleAuth, pred: (s: AuthState) => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (pred(auth.current)) return resolve();
    const stop = auth.subscribe((s) => {
      if (!pred(s)) return;
      stop();
      resolve();
    });
  });
}

/** navigator.locks.request in exclusive mode: callbacks under one name run one at a time. */
class ExclusiveLocks {
  private tails = new Map<string, Promise<unknown>>();
  request<T>(name: string, callback: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(name) ?? Promise.resolve()).then(callback, callback);
    this.tails.set(name, run.catch(() => {}));
    return run;
  }
}

import { ConvexClient, ConvexHttpClient, type ConvexClientOptions } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

export type Message = { _id: string; body: string };

export const api = {
  messages: {
    list: makeFunctionReference<"query", { conversationId: string }, Message[]>("messages:list"),
    count: makeFunctionReference<"query", { conversationId: string }, number>("messages:count"),
    send: makeFunctionReference<"mutation", { conversationId: string; body: string }, string>("messages:send"),
    slowSend: makeFunctionReference<
      "mutation",
      { conversationId: string; body: string; delayMs: number },
      string
    >("messages:slowSend"),
  },
  conversations: {
    create: makeFunctionReference<"mutation", Record<string, never>, string>("conversations:create"),
  },
  auth: {
    /** The caller's user id, or null when anonymous. */
    whoami: makeFunctionReference<"query", Record<string, never>, string | null>("auth:whoami"),
    /** Posts a message as the signed-in user; UNAUTHENTICATED when anonymous. */
    send: makeFunctionReference<"mutation", { conversationId: string; body: string }, string>("auth:send"),
  },
};

type Version = { querySet: number; identity: number; ts: string };

/** What a recording socket saw: every server message, and any broken transition chain. */
export type SocketLog = {
  received: any[];
  /** Transitions whose startVersion did not equal the previous endVersion on the same socket. */
  chainErrors: string[];
  /** Errors the official client threw while handling a server message. */
  clientErrors: unknown[];
};

const ZERO_TS = Buffer.alloc(8).toString("base64");

/**
 * A `ws` WebSocket subclass per client that records its instances (so a test can kill the
 * client's socket), checks the transition chain independently of the client, and records
 * exceptions the client throws from its message handler (it throws on a broken chain).
 */
export function recordingWebSocket() {
  const sockets: RecordingSocket[] = [];
  const log: SocketLog = { received: [], chainErrors: [], clientErrors: [] };

  class RecordingSocket extends WebSocket {
    private lastEnd: Version | null = null;

    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols);
      sockets.push(this);
      // The client assigns `ws.onmessage = handler`; `ws` implements onmessage as an accessor on
      // its prototype. Shadow it on the instance to check each message and record what the
      // client's handler throws.
      const attr = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage")!;
      Object.defineProperty(this, "onmessage", {
        configurable: true,
        get: () => attr.get!.call(this),
        set: (handler: ((ev: WebSocket.MessageEvent) => void) | null) => {
          attr.set!.call(
            this,
            handler &&
              ((ev: WebSocket.MessageEvent) => {
                this.check(ev.data);
                try {
                  handler(ev);
                } catch (err) {
                  log.clientErrors.push(err);
                  throw err;
                }
              }),
          );
        },
      });
    }

    private check(data: WebSocket.Data) {
      let msg: any;
      try {
        msg = JSON.parse(String(data));
      } catch {
        log.chainErrors.push(`unparseable server message: ${String(data).slice(0, 200)}`);
        return;
      }
      if (msg.type !== "Ping") log.received.push(msg);
      if (msg.type !== "Transition") return;
      const start: Version = msg.startVersion;
      const expected: Version = this.lastEnd ?? { querySet: 0, identity: 0, ts: ZERO_TS };
      if (
        start.querySet !== expected.querySet ||
        start.identity !== expected.identity ||
        start.ts !== expected.ts
      ) {
        log.chainErrors.push(
          `Transition.startVersion ${JSON.stringify(start)} != previous endVersion ${JSON.stringify(expected)}`,
        );
      }
      this.lastEnd = msg.endVersion;
    }
  }

  return { WebSocketClass: RecordingSocket, sockets, log };
}

export type TestClient = {
  client: ConvexClient;
  sockets: WebSocket[];
  log: SocketLog;
  /** Kill the current socket abruptly (no close handshake), as a network drop would. */
  killSocket(): void;
};

const openClients: ConvexClient[] = [];

export function newClient(url: string, options: ConvexClientOptions = {}): TestClient {
  const { WebSocketClass, sockets, log } = recordingWebSocket();
  const client = new ConvexClient(url, {
    ...options,
    skipConvexDeploymentUrlCheck: true,
    webSocketConstructor: WebSocketClass as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  openClients.push(client);
  return {
    client,
    sockets,
    log,
    killSocket() {
      const ws = sockets.at(-1);
      if (!ws) throw new Error("client has no socket yet");
      ws.terminate();
    },
  };
}

export async function closeClients() {
  const all = openClients.splice(0);
  await Promise.all(all.map((c) => c.close()));
}

export function httpClient(url: string) {
  return new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls cond until it returns true; fails with describe() after timeoutMs. */
export async function waitFor(cond: () => boolean, describe: () => string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${describe()}`);
    await sleep(10);
  }
}

/**
 * Runs a mutation through the official client, failing after timeoutMs with the last server
 * messages this client received (a mutation that never resolves is the typical symptom of a
 * server that breaks the client's ordering rules).
 */
export async function mutate<T>(c: TestClient, ref: any, args: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
  return within(c.client.mutation(ref, args) as Promise<T>, timeoutMs, `mutation ${JSON.stringify(args)}`, c);
}

export async function within<T>(p: Promise<T>, timeoutMs: number, what: string, c?: TestClient): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const recent = c ? ` Last server messages: ${JSON.stringify(c.log.received.slice(-4))}` : "";
      reject(new Error(`${what} did not settle within ${timeoutMs} ms.${recent}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A logger for the official client that keeps what it warns and errs about. */
export function recordingLogger() {
  const warnings: string[] = [];
  const errors: string[] = [];
  const verbose: string[] = [];
  const text = (args: any[]) => args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
  return {
    warnings,
    errors,
    verbose,
    logger: {
      logVerbose: (...args: any[]) => void verbose.push(text(args)),
      log: () => {},
      warn: (...args: any[]) => void warnings.push(text(args)),
      error: (...args: any[]) => void errors.push(text(args)),
    },
  };
}

// Ripple's accounts (docs/protocol.md, "Ripple auth").

export type AuthSession = {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
  user: { _id: string; email: string; name: string };
};

async function authPost(url: string, route: string, body: unknown): Promise<AuthSession> {
  const res = await fetch(`${url}/api/auth/${route}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST /api/auth/${route}: ${res.status} ${text}`);
  return JSON.parse(text) as AuthSession;
}

let emailCounter = 0;

/** Signs up a new user with a unique email address. */
export function signUp(url: string, name = "Test User", password = "correct horse battery staple") {
  const email = `user-${process.pid}-${Date.now()}-${++emailCounter}@example.com`;
  return authPost(url, "signup", { email, password, name });
}

export function refreshSession(url: string, refreshToken: string) {
  return authPost(url, "refresh", { refreshToken });
}

/** The claims of a JWT (not verified). */
export function jwtClaims(token: string): { sub: string; iat: number; exp: number; [k: string]: unknown } {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

/**
 * A fetchToken for ConvexClient.setAuth, as an app would write it: the current access token,
 * or, when the client asks for a fresh one (forceRefreshToken), the result of /api/auth/refresh.
 * Counts its calls and keeps every token it handed out.
 */
export function tokenSource(url: string, session: AuthSession) {
  let current = session;
  let refreshing: Promise<AuthSession> | null = null;
  const calls = { cached: 0, forced: 0, failed: 0 };
  const issued: string[] = [session.accessToken];
  const fetchToken = async ({ forceRefreshToken }: { forceRefreshToken: boolean }) => {
    if (!forceRefreshToken) {
      calls.cached++;
      return current.accessToken;
    }
    calls.forced++;
    // One refresh at a time: a refresh token is single use.
    refreshing ??= refreshSession(url, current.refreshToken).finally(() => {
      refreshing = null;
    });
    try {
      current = await refreshing;
    } catch {
      calls.failed++;
      return null;
    }
    issued.push(current.accessToken);
    return current.accessToken;
  };
  return { fetchToken, calls, issued, current: () => current };
}

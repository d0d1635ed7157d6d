// Ripple's email + password accounts (POST /api/auth/*), tokens kept in localStorage, and the
// token fetcher handed to the Convex client (client.setAuth).
import type { ConvexReactClient } from "convex/react";

export type User = { _id: string; name: string; email: string };
export type Session = {
  accessToken: string;
  refreshToken: string;
  expiresAt?: unknown;
  user?: User;
};

const STORAGE_KEY = "ripple.session";

/** An error answered by /api/auth/*: `{code, message, retryAfterMs?}`. */
export class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "AuthError";
  }
}

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return typeof s?.accessToken === "string" && typeof s?.refreshToken === "string" ? s : null;
  } catch {
    return null;
  }
}

function storeSession(s: Session | null) {
  if (s) localStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  else localStorage.removeItem(STORAGE_KEY);
}

async function post(path: string, body: unknown): Promise<any> {
  let res: Response;
  try {
    res = await fetch(`/api/auth/${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new AuthError("NETWORK", "Cannot reach the server. Check your connection.", 0);
  }
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    throw new AuthError(
      data?.code ?? "ERROR",
      data?.message ?? `Request failed (${res.status})`,
      res.status,
      data?.retryAfterMs,
    );
  }
  return data;
}

type Listener = (session: Session | null) => void;

/**
 * Holds the session and keeps the Convex client's auth in step with it. One instance per page.
 */
export class Auth {
  private session: Session | null = loadSession();
  private refreshing: Promise<string | null> | null = null;
  private listeners = new Set<Listener>();

  constructor(private readonly client: ConvexReactClient) {
    if (this.session) this.attach();
  }

  get current(): Session | null {
    return this.session;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async signUp(email: string, password: string, name: string) {
    this.set(await post("signup", { email, password, name }));
    this.attach();
  }

  async signIn(email: string, password: string) {
    this.set(await post("signin", { email, password }));
    this.attach();
  }

  async signOut() {
    const s = this.session;
    this.set(null);
    this.client.clearAuth();
    if (s) {
      try {
        await post("signout", { refreshToken: s.refreshToken });
      } catch {
        /* the session is gone locally either way */
      }
    }
  }

  private set(s: Session | null) {
    this.session = s;
    storeSession(s);
    for (const fn of this.listeners) fn(s);
  }

  private attach() {
    this.client.setAuth(
      ({ forceRefreshToken }) => this.fetchToken(forceRefreshToken),
      (isAuthenticated) => {
        // The server refused the token and no fresh one could be had: back to sign-in.
        if (!isAuthenticated && this.session) this.set(null);
      },
    );
  }

  /** The stored access token, or a refreshed one when forced (one refresh at a time). */
  private async fetchToken(force: boolean): Promise<string | null> {
    if (!this.session) return null;
    if (!force) return this.session.accessToken;
    if (!this.refreshing) {
      this.refreshing = this.refresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async refresh(): Promise<string | null> {
    const s = this.session;
    if (!s) return null;
    try {
      const next: Session = await post("refresh", { refreshToken: s.refreshToken });
      // Signed out meanwhile: drop the new pair.
      if (this.session !== s) return this.session?.accessToken ?? null;
      this.set({ ...next, user: next.user ?? s.user });
      return next.accessToken;
    } catch (err) {
      // A refused refresh token is spent or revoked; a network error keeps the session for later.
      if (err instanceof AuthError && err.status >= 400 && err.status < 500) {
        if (this.session === s) this.set(null);
      }
      return null;
    }
  }
}

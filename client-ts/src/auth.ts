import type { RippleClient } from "./client.js";
import { RippleError } from "./errors.js";

export type User = { _id: string; name: string; email: string };

/** What /api/auth/signup|signin|refresh answer (docs/protocol.md, "Ripple auth"). */
export type Session = {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, in ms since the epoch. */
  expiresAt: number;
  user: User;
};

export type AuthState = {
  session: Session | null;
  /** A stored session the server has not accepted or refused yet. */
  isLoading: boolean;
  /** The server accepted the session's token. */
  isAuthenticated: boolean;
};

export type RippleAuthOptions = {
  /** Where the session is kept; localStorage by default (the chat's design, docs/design.md). */
  storage?: Storage;
  /** The storage key; one per server when an origin talks to several. */
  storageKey?: string;
  /** An access token this close to expiry is refreshed before it is handed out. Default 30 s. */
  refreshMarginMs?: number;
  /** Do not start in the constructor; call start(). */
  deferStart?: boolean;
};

const DEFAULT_KEY = "ripple.session";

/**
 * Ripple's email + password accounts for one RippleClient: signs up, in and out through
 * /api/auth/*, keeps the session in localStorage, and gives the client its token.
 *
 * Refresh tokens are single use, so refreshing is serialized: one refresh at a time in this
 * page, and, with Web Locks, across the tabs of the origin; a tab that waited for the lock
 * takes the session the other tab stored instead of spending the same refresh token again.
 * The Convex client underneath asks for a fresh token before the current one expires and
 * when the server refuses it (AuthError).
 */
export class RippleAuth {
  private state: AuthState;
  private refreshing: Promise<string | null> | null = null;
  private listeners = new Set<(s: AuthState) => void>();
  private readonly storage: Storage;
  private readonly key: string;
  private readonly margin: number;
  private started = false;
  private onStorage = (ev: StorageEvent) => {
    if (ev.key !== this.key || ev.storageArea !== this.storage) return;
    this.adopt(this.load());
  };

  constructor(
    private readonly client: RippleClient,
    options: RippleAuthOptions = {},
  ) {
    this.storage = options.storage ?? globalThis.localStorage;
    this.key = options.storageKey ?? DEFAULT_KEY;
    this.margin = options.refreshMarginMs ?? 30_000;
    const session = this.load();
    this.state = { session, isLoading: session !== null, isAuthenticated: false };
    if (!options.deferStart) this.start();
  }

  /**
   * Hands the stored session's token to the client and follows other tabs' changes. The
   * constructor calls it unless `deferStart` (RippleAuthProvider starts it in an effect).
   */
  start() {
    if (this.started) return;
    this.started = true;
    globalThis.addEventListener?.("storage", this.onStorage as EventListener);
    const stored = this.load();
    if (stored?.refreshToken !== this.state.session?.refreshToken) this.adopt(stored);
    else if (this.state.session) this.attach();
  }

  /** The current state; a new object on every change. */
  get current(): AuthState {
    return this.state;
  }

  /** Calls fn on every change of `current`; returns the function that stops it. */
  subscribe(fn: (s: AuthState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async signUp(args: { email: string; password: string; name: string }): Promise<User> {
    return this.begin(await this.post<Session>("signup", args));
  }

  async signIn(args: { email: string; password: string }): Promise<User> {
    return this.begin(await this.post<Session>("signin", args));
  }

  /** Forgets the session here (and in the other tabs) and revokes its refresh token. */
  async signOut(): Promise<void> {
    const s = this.state.session;
    this.store(null);
    this.set({ session: null, isLoading: false, isAuthenticated: false });
    this.client.clearAuth();
    if (s) {
      try {
        await this.post("signout", { refreshToken: s.refreshToken });
      } catch {
        // The session is gone here either way; the refresh token expires on its own.
      }
    }
  }

  /**
   * Refreshes the session now and returns the new access token (null when signed out or
   * refused). Refreshes are serialized across tabs: one that finds a session another tab just
   * refreshed takes it instead.
   */
  refresh(): Promise<string | null> {
    return this.fetchToken(true);
  }

  /** Stops following other tabs; start() resumes. */
  dispose() {
    this.started = false;
    globalThis.removeEventListener?.("storage", this.onStorage as EventListener);
  }

  private begin(session: Session): User {
    this.store(session);
    this.set({ session, isLoading: true, isAuthenticated: false });
    this.attach();
    return session.user;
  }

  private set(next: AuthState) {
    this.state = next;
    for (const fn of this.listeners) fn(next);
  }

  /** Takes a session another tab stored (a refresh, a sign-in, a sign-out). */
  private adopt(session: Session | null) {
    const had = this.state.session;
    if (session?.refreshToken === had?.refreshToken) return;
    if (!session) {
      this.set({ session: null, isLoading: false, isAuthenticated: false });
      this.client.clearAuth();
      return;
    }
    if (had && session.user._id === had.user._id) {
      // The same account refreshed elsewhere: the socket's token is still good.
      this.set({ ...this.state, session });
      return;
    }
    this.set({ session, isLoading: true, isAuthenticated: false });
    this.attach();
  }

  private attach() {
    this.client.setAuth(
      ({ forceRefreshToken }) => this.fetchToken(forceRefreshToken),
      (isAuthenticated) => {
        const session = this.state.session;
        if (!isAuthenticated && session) {
          // The server refused the token and no fresh one could be had: signed out.
          this.store(null);
          this.set({ session: null, isLoading: false, isAuthenticated: false });
          return;
        }
        this.set({ session, isLoading: false, isAuthenticated: isAuthenticated && session !== null });
      },
    );
  }

  /** The stored access token, refreshed first when forced or about to expire. */
  private async fetchToken(force: boolean): Promise<string | null> {
    const s = this.state.session;
    if (!s) return null;
    if (!force && s.expiresAt - Date.now() > this.margin) return s.accessToken;
    this.refreshing ??= this.refreshAcrossTabs(s).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refreshAcrossTabs(s: Session): Promise<string | null> {
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    if (!locks) return this.refreshOnce(s);
    return locks.request(`ripple.auth.refresh:${this.client.origin}:${this.key}`, () => this.refreshOnce(s));
  }

  private async refreshOnce(s: Session): Promise<string | null> {
    // Another tab may have refreshed while this one waited for the lock.
    const stored = this.load();
    if (stored && stored.refreshToken !== s.refreshToken && stored.user._id === s.user._id) {
      this.set({ ...this.state, session: stored });
      if (stored.expiresAt - Date.now() > this.margin) return stored.accessToken;
      s = stored;
    }
    if (this.state.session?.refreshToken !== s.refreshToken) {
      return this.state.session?.accessToken ?? null; // signed out or in again meanwhile
    }
    let next: Session;
    try {
      next = await this.post<Session>("refresh", { refreshToken: s.refreshToken });
    } catch (err) {
      // A refused refresh token is spent or revoked; a network failure keeps the session so a
      // later attempt can still refresh it.
      if (err instanceof RippleError && err.code !== "NETWORK" && Number(err.data.status) < 500) {
        if (this.state.session === s) {
          this.store(null);
          this.set({ session: null, isLoading: false, isAuthenticated: false });
        }
      }
      return null;
    }
    if (this.state.session?.refreshToken !== s.refreshToken) return this.state.session?.accessToken ?? null;
    const session = { ...next, user: next.user ?? s.user };
    // Without Web Locks another tab may have stored a session while this refresh was in flight:
    // a later refresh of the same pair (the server's grace gave this tab the pair that tab got,
    // and that tab has refreshed it since), a sign-in or a sign-out. A tab only writes over the
    // session it refreshed from, so what is stored is at least as new as this answer: take it
    // rather than write a pair that may already be spent over it.
    const latest = this.storage ? this.load() : session;
    if (latest?.refreshToken !== s.refreshToken && latest?.refreshToken !== session.refreshToken) {
      this.adopt(latest);
      return this.state.session?.accessToken ?? null;
    }
    this.store(session);
    this.set({ ...this.state, session });
    return session.accessToken;
  }

  private load(): Session | null {
    try {
      const raw = this.storage?.getItem(this.key);
      if (!raw) return null;
      const s = JSON.parse(raw) as Session;
      return typeof s?.accessToken === "string" && typeof s?.refreshToken === "string" && s.user ? s : null;
    } catch {
      return null;
    }
  }

  private store(s: Session | null) {
    if (s) this.storage?.setItem(this.key, JSON.stringify(s));
    else this.storage?.removeItem(this.key);
  }

  /** POSTs to /api/auth/<route>; a refusal is a RippleError with the server's code. */
  private async post<T>(route: string, body: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.client.origin}/api/auth/${route}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new RippleError("NETWORK", "Cannot reach the server. Check your connection.", { cause: err });
    }
    const text = await res.text();
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported by status below
    }
    if (!res.ok) {
      const { code, message, ...rest } = (data ?? {}) as Record<string, unknown>;
      throw new RippleError(typeof code === "string" ? code : "INTERNAL", typeof message === "string" ? message : `Request failed (${res.status})`, {
        data: { ...rest, status: res.status },
      });
    }
    return data as T;
  }
}

import { ConvexReactClient, type ConvexReactClientOptions, type Watch, type WatchQueryOptions } from "convex/react";
import type { ArgsAndOptions, FunctionArgs, FunctionReference, FunctionReturnType } from "convex/server";
import { toRippleError, type RippleError } from "./errors.js";

/**
 * Where the client's socket is. `reconnecting` and `offline` carry `since`, the moment the
 * socket was lost, so an app can say "offline for 2 minutes"; `offline` is `reconnecting` while
 * the browser reports no network.
 */
export type ConnectionStatus =
  | { state: "connecting"; since: Date }
  | { state: "connected"; since: Date }
  | { state: "reconnecting"; since: Date }
  | { state: "offline"; since: Date };

export type RippleClientOptions = ConvexReactClientOptions;

/**
 * Ripple's client: one WebSocket to a Ripple server, shared by every subscription and call.
 *
 * It is the official Convex React client (see README.md for why) with Ripple's defaults and
 * Ripple's errors: every failure of a query, mutation or action is a RippleError with a code.
 * It works outside React components too (scripts, tests, service code): `subscribe`,
 * `mutation`, `action`, `query`, `setAuth`.
 */
export class RippleClient extends ConvexReactClient {
  private status: ConnectionStatus = { state: "connecting", since: new Date() };
  private statusListeners = new Set<(s: ConnectionStatus) => void>();
  private stopWatchingConnection: (() => void) | null = null;
  private onlineHandler = () => this.updateStatus();

  constructor(url: string, options: RippleClientOptions = {}) {
    // Ripple serves any host name, not only *.convex.cloud.
    super(url, { skipConvexDeploymentUrlCheck: true, ...options });
    this.origin = url.replace(/\/+$/, "");
    // Every query, mutation and action failure becomes a RippleError, for the hooks of
    // convex/react (which call these methods) as much as for direct callers.
    const watchQuery = this.watchQuery.bind(this);
    this.watchQuery = ((query: any, ...rest: any[]) => {
      const watch = (watchQuery as any)(query, ...rest) as Watch<unknown>;
      return {
        onUpdate: (cb: () => void) => watch.onUpdate(cb),
        journal: () => watch.journal(),
        localQueryResult: () => {
          try {
            return watch.localQueryResult();
          } catch (err) {
            throw toRippleError(err);
          }
        },
      };
    }) as ConvexReactClient["watchQuery"];
    for (const name of ["mutation", "action", "query"] as const) {
      const call = (this[name] as (...a: any[]) => Promise<unknown>).bind(this);
      (this as any)[name] = (...a: any[]) =>
        call(...a).catch((err: unknown) => {
          throw toRippleError(err);
        });
    }
  }

  /** The server's origin, without a trailing slash. */
  readonly origin: string;

  /**
   * Keeps a query subscribed and calls onResult with each new result, or onError with the
   * function's error. Subscriptions to the same query and arguments share one server
   * subscription. Returns the function that unsubscribes.
   */
  subscribe<Query extends FunctionReference<"query">>(
    query: Query,
    args: FunctionArgs<Query>,
    onResult: (result: FunctionReturnType<Query>) => void,
    onError?: (err: RippleError) => void,
  ): () => void {
    const watch = this.watchQuery(query, ...([args] as unknown as ArgsAndOptions<Query, WatchQueryOptions>));
    const deliver = () => {
      let result: FunctionReturnType<Query> | undefined;
      try {
        result = watch.localQueryResult();
      } catch (err) {
        onError?.(toRippleError(err));
        return;
      }
      if (result !== undefined) onResult(result);
    };
    const unsubscribe = watch.onUpdate(deliver);
    deliver(); // a result already cached by another subscriber
    return unsubscribe;
  }

  /** The connection's state now. */
  connectionStatus(): ConnectionStatus {
    this.watchConnection();
    return this.status;
  }

  /** Calls cb on every change of connectionStatus(); returns the function that stops it. */
  onConnectionStatus(cb: (s: ConnectionStatus) => void): () => void {
    this.watchConnection();
    this.statusListeners.add(cb);
    return () => this.statusListeners.delete(cb);
  }

  override async close(): Promise<void> {
    this.stopWatchingConnection?.();
    this.stopWatchingConnection = null;
    this.statusListeners.clear();
    await super.close();
  }

  private watchConnection() {
    if (this.stopWatchingConnection) return;
    const unsubscribe = this.subscribeToConnectionState(() => this.updateStatus());
    globalThis.addEventListener?.("online", this.onlineHandler);
    globalThis.addEventListener?.("offline", this.onlineHandler);
    this.stopWatchingConnection = () => {
      unsubscribe();
      globalThis.removeEventListener?.("online", this.onlineHandler);
      globalThis.removeEventListener?.("offline", this.onlineHandler);
    };
    this.updateStatus();
  }

  private updateStatus() {
    const c = this.connectionState();
    const browserOffline = typeof navigator !== "undefined" && navigator.onLine === false;
    let state: ConnectionStatus["state"];
    if (c.isWebSocketConnected) state = "connected";
    else if (browserOffline) state = "offline";
    else state = c.hasEverConnected ? "reconnecting" : "connecting";
    if (state === this.status.state) return;
    // Offline and reconnecting are one outage: keep the moment it began.
    const outage = (s: ConnectionStatus["state"]) => s === "reconnecting" || s === "offline";
    const since = outage(state) && outage(this.status.state) ? this.status.since : new Date();
    this.status = { state, since };
    for (const cb of this.statusListeners) cb(this.status);
  }
}

import {
  createContext,
  useContext,
  useEffect,
  useMemo,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import {
  ConvexProvider,
  useAction as convexUseAction,
  useMutation as convexUseMutation,
  usePaginatedQuery as convexUsePaginatedQuery,
  useQueries,
  type ReactAction,
  type ReactMutation,
} from "convex/react";
import type { PaginatedQueryArgs, PaginatedQueryReference } from "convex/react";
import type { FunctionArgs, FunctionReference, FunctionReturnType } from "convex/server";
import { RippleAuth, type AuthState, type RippleAuthOptions, type User } from "./auth.js";
import type { ConnectionStatus, RippleClient } from "./client.js";
import { toRippleError, type RippleError } from "./errors.js";

const ClientContext = createContext<RippleClient | null>(null);

/** Makes `client` the one the hooks below use. */
export function RippleProvider({ client, children }: { client: RippleClient; children?: ReactNode }) {
  return (
    <ClientContext.Provider value={client}>
      <ConvexProvider client={client}>{children}</ConvexProvider>
    </ClientContext.Provider>
  );
}

/** The RippleClient of the nearest RippleProvider. */
export function useRippleClient(): RippleClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("Ripple hooks must be used inside <RippleProvider client={...}>");
  return client;
}

type EmptyArgs = Record<string, never>;
/** The arguments of a query hook: `"skip"` subscribes to nothing; empty args may be left out. */
type ArgsOrSkip<Q extends FunctionReference<"query">> =
  FunctionArgs<Q> extends EmptyArgs ? [args?: EmptyArgs | "skip"] : [args: FunctionArgs<Q> | "skip"];

export type QueryState<T> =
  | { status: "loading"; data: undefined; error: undefined }
  | { status: "success"; data: T; error: undefined }
  | { status: "error"; data: undefined; error: RippleError };

/**
 * A live query: undefined while loading, then each new result. A failure is thrown as a
 * RippleError to the nearest error boundary; with `{ throwOnError: false }` the hook returns
 * the query's state instead (as `useQueryState` does).
 */
export function useQuery<Q extends FunctionReference<"query">>(
  query: Q,
  args: FunctionArgs<Q> | "skip",
  options: { throwOnError: false },
): QueryState<FunctionReturnType<Q>>;
export function useQuery<Q extends FunctionReference<"query">>(query: Q, ...args: ArgsOrSkip<Q>): FunctionReturnType<Q> | undefined;
export function useQuery<Q extends FunctionReference<"query">>(
  query: Q,
  ...rest: [args?: FunctionArgs<Q> | "skip", options?: { throwOnError?: boolean }]
): FunctionReturnType<Q> | undefined | QueryState<FunctionReturnType<Q>> {
  const state = useQueryState(query, ...([rest[0]] as ArgsOrSkip<Q>));
  if (rest[1]?.throwOnError === false) return state;
  if (state.status === "error") throw state.error;
  return state.data;
}

/** A live query whose failure is returned (status "error") instead of thrown. */
export function useQueryState<Q extends FunctionReference<"query">>(query: Q, ...args: ArgsOrSkip<Q>): QueryState<FunctionReturnType<Q>> {
  const a = args[0];
  const skip = a === "skip";
  const argsKey = skip ? "" : JSON.stringify(a ?? {});
  // useQueries keeps one watch per distinct (query, args), reusing the client's subscription.
  const requests = useMemo(
    (): Parameters<typeof useQueries>[0] => (skip ? {} : { q: { query, args: (a ?? {}) as Record<string, any> } }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [query, argsKey, skip],
  );
  const result = useQueries(requests).q as unknown;
  if (result instanceof Error) return { status: "error", data: undefined, error: toRippleError(result) };
  if (result === undefined) return { status: "loading", data: undefined, error: undefined };
  return { status: "success", data: result as FunctionReturnType<Q>, error: undefined };
}

/**
 * A function that runs a mutation; `.withOptimisticUpdate(fn)` applies fn to the local query
 * results at once (Convex's localStore.getQuery/setQuery) and rolls it back if the mutation
 * fails. Failures reject with a RippleError.
 */
export function useMutation<M extends FunctionReference<"mutation">>(mutation: M): ReactMutation<M> {
  return convexUseMutation(mutation);
}

/** A function that runs an action; a dropped connection rejects it with CONNECTION_LOST. */
export function useAction<A extends FunctionReference<"action">>(action: A): ReactAction<A> {
  return convexUseAction(action);
}

/**
 * A paginated live query (`paginationOpts` is added by the hook): `results` grows as pages
 * load and as rows arrive; `loadMore(n)` asks for the next n. Each loaded page is pinned to
 * its end cursor (docs/protocol.md, Pagination), so new rows never shift one page into the next.
 */
export function usePaginatedQuery<Q extends PaginatedQueryReference>(
  query: Q,
  args: PaginatedQueryArgs<Q> | "skip",
  options: { initialNumItems: number },
) {
  return convexUsePaginatedQuery(query, args, options);
}

/** The client's connection: connecting, connected, reconnecting or offline, and since when. */
export function useConnectionState(): ConnectionStatus {
  const client = useRippleClient();
  return useSyncExternalStore(
    (cb) => client.onConnectionStatus(cb),
    () => client.connectionStatus(),
    () => client.connectionStatus(),
  );
}

// Accounts.

export type UseAuth = AuthState & {
  user: User | null;
  signUp: RippleAuth["signUp"];
  signIn: RippleAuth["signIn"];
  signOut: RippleAuth["signOut"];
};

const AuthContext = createContext<RippleAuth | null>(null);

/**
 * Ripple's accounts for the client of the enclosing RippleProvider (or `client`): the session
 * in localStorage, its token on the client's socket, refreshed as it nears expiry.
 */
export function RippleAuthProvider({
  client,
  children,
  ...options
}: { client: RippleClient; children?: ReactNode } & RippleAuthOptions) {
  // The session is read at once (a stored one renders signed in on the first render); the
  // token goes to the client and other tabs are followed from the effect on.
  const auth = useMemo(
    () => new RippleAuth(client, { ...options, deferStart: true }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [client, options.storage, options.storageKey, options.refreshMarginMs],
  );
  useEffect(() => {
    auth.start();
    return () => auth.dispose();
  }, [auth]);
  return (
    <RippleProvider client={client}>
      <AuthContext.Provider value={auth}>{children}</AuthContext.Provider>
    </RippleProvider>
  );
}

const loading: AuthState = { session: null, isLoading: true, isAuthenticated: false };

/** The session and the calls that change it. */
export function useAuth(): UseAuth {
  const auth = useContext(AuthContext);
  const state = useSyncExternalStore(
    (cb) => auth?.subscribe(cb) ?? (() => {}),
    () => auth?.current ?? loading,
    () => auth?.current ?? loading,
  );
  const unavailable = () => Promise.reject(new Error("useAuth must be used inside <RippleAuthProvider>"));
  return {
    ...state,
    user: state.session?.user ?? null,
    signUp: auth ? (a) => auth.signUp(a) : unavailable,
    signIn: auth ? (a) => auth.signIn(a) : unavailable,
    signOut: auth ? () => auth.signOut() : unavailable,
  };
}

/** Renders its children once the server accepted the session. */
export function Authenticated({ children }: { children?: ReactNode }) {
  const { isLoading, isAuthenticated } = useAuth();
  return !isLoading && isAuthenticated ? <>{children}</> : null;
}

/** Renders its children when there is no session (or the server refused it). */
export function Unauthenticated({ children }: { children?: ReactNode }) {
  const { isLoading, isAuthenticated } = useAuth();
  return !isLoading && !isAuthenticated ? <>{children}</> : null;
}

/** Renders its children while a stored session waits for the server's answer. */
export function AuthLoading({ children }: { children?: ReactNode }) {
  return useAuth().isLoading ? <>{children}</> : null;
}

// Ripple's TypeScript client: see README.md.
export { RippleClient, type RippleClientOptions, type ConnectionStatus } from "./client.js";
export { RippleError, toRippleError, errorMessage, type RippleErrorCode } from "./errors.js";
export { RippleAuth, type AuthState, type RippleAuthOptions, type Session, type User } from "./auth.js";
export {
  RippleProvider,
  RippleAuthProvider,
  useRippleClient,
  useQuery,
  useQueryState,
  useMutation,
  useAction,
  usePaginatedQuery,
  useConnectionState,
  useAuth,
  Authenticated,
  Unauthenticated,
  AuthLoading,
  type QueryState,
  type UseAuth,
} from "./react.js";
export { makeFunctionReference as functionReference } from "convex/server";
export type {
  FunctionReference,
  FunctionArgs,
  FunctionReturnType,
  PaginationOptions,
  PaginationResult,
} from "convex/server";
export type { OptimisticLocalStore, OptimisticUpdate } from "convex/browser";
export type { ReactMutation, ReactAction } from "convex/react";

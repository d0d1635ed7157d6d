import { ConvexError } from "convex/values";

/**
 * The codes a Ripple server sends (engine.ErrorCode), and the ones this client adds for what
 * happens on its side of the connection. A function may send codes of its own, so `code` is
 * a string.
 */
export type RippleErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "INVALID_ARGUMENT"
  | "CONFLICT"
  | "RATE_LIMITED"
  | "UNAVAILABLE"
  | "INTERNAL"
  /** The socket dropped while an action ran: it may or may not have finished on the server. */
  | "CONNECTION_LOST"
  /** The accounts routes (/api/auth/*) could not be reached. */
  | "NETWORK"
  | (string & {});

/**
 * An error from a Ripple function or the accounts routes: `code` for programs, `message` for
 * people, and `data` with whatever else the server attached (e.g. `retryAfterMs`). Applications
 * switch on `code` instead of parsing the Convex client's "[CONVEX M(...)] ... Called by client"
 * text.
 */
export class RippleError extends Error {
  readonly code: RippleErrorCode;
  readonly data: Record<string, unknown>;
  /** The server's request id, for an internal error whose details are only in the server log. */
  readonly requestId?: string;

  constructor(code: RippleErrorCode, message: string, options: { data?: Record<string, unknown>; requestId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RippleError";
    this.code = code;
    this.data = options.data ?? {};
    this.requestId = options.requestId;
  }
}

/** What people see for a code when the server sent no message of its own. */
const defaultMessages: Record<string, string> = {
  UNAUTHENTICATED: "You are signed out. Sign in again.",
  FORBIDDEN: "You are not allowed to do that.",
  NOT_FOUND: "Not found.",
  RATE_LIMITED: "Too many requests; try again shortly.",
  UNAVAILABLE: "The server is unavailable; try again shortly.",
  INTERNAL: "Something went wrong on the server.",
  CONNECTION_LOST: "The connection was lost before the server answered; the action may or may not have run.",
};

const requestIdPattern = /\[Request ID: ([^\]]*)\]/;

/** Strips the Convex client's decorations from a server message. */
function clean(message: string): string {
  return message
    .replace(/^\[CONVEX [A-Z?]\([^)]*\)\]\s*/, "")
    .replace(/\s*Called by client\s*$/, "")
    .replace(/^\[Request ID: [^\]]*\]\s*/, "")
    .replace(/^Server Error\s*/, "")
    .replace(/^Uncaught ConvexError:\s*/, "")
    .replace(/^Uncaught Error:\s*/, "")
    .trim();
}

/**
 * Turns whatever the Convex client threw into a RippleError: a ConvexError carries the server's
 * `{code, ...}` data; any other server failure is INTERNAL with its request id; a lost
 * connection during an action is CONNECTION_LOST. A RippleError is returned as it is.
 */
export function toRippleError(err: unknown): RippleError {
  if (err instanceof RippleError) return err;
  if (err instanceof ConvexError) {
    const data = err.data as unknown;
    if (data !== null && typeof data === "object" && !Array.isArray(data)) {
      const { code, message, ...rest } = data as Record<string, unknown>;
      const c = typeof code === "string" ? code : "INTERNAL";
      const text = typeof message === "string" && message ? message : clean(err.message);
      return new RippleError(c, text && text !== "[object Object]" ? text : (defaultMessages[c] ?? c), { data: rest, cause: err });
    }
    return new RippleError("INTERNAL", typeof data === "string" ? clean(data) : clean(err.message), { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/Connection lost while action was in flight/i.test(message)) {
    return new RippleError("CONNECTION_LOST", defaultMessages.CONNECTION_LOST, { cause: err });
  }
  const requestId = requestIdPattern.exec(message)?.[1];
  const text = clean(message);
  return new RippleError("INTERNAL", text || defaultMessages.INTERNAL, { requestId, cause: err });
}

/** A message for people from any error (a RippleError's message, else a generic one). */
export function errorMessage(err: unknown): string {
  const e = toRippleError(err);
  return e.message || defaultMessages[e.code] || "Something went wrong.";
}

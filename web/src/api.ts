// References to the Go functions in functions/ (see the README for their shapes).
import { makeFunctionReference } from "convex/server";
import type { PaginationOptions, PaginationResult } from "convex/server";
import { ConvexError } from "convex/values";

export type Id = string;
export type Participant = { _id: Id; name: string; email: string };
export type Conversation = {
  _id: Id;
  type: string;
  participants: Participant[];
  lastMessageTime: number | null;
  lastMessage: { body: string; senderId: Id; _creationTime: number } | null;
};
export type Message = {
  _id: Id;
  _creationTime: number;
  conversationId: Id;
  senderId: Id;
  body: string;
};
export type SearchHit = { _id: Id; _creationTime: number; senderId: Id; body: string; score: number };

export const api = {
  users: {
    me: makeFunctionReference<"query", Record<string, never>, Participant | null>("users:me"),
  },
  conversations: {
    list: makeFunctionReference<"query", Record<string, never>, Conversation[]>("conversations:list"),
    getOrCreateDirect: makeFunctionReference<"mutation", { email: string }, Id>(
      "conversations:getOrCreateDirect",
    ),
  },
  messages: {
    list: makeFunctionReference<
      "query",
      { conversationId: Id; paginationOpts: PaginationOptions },
      PaginationResult<Message>
    >("messages:list"),
    send: makeFunctionReference<"mutation", { conversationId: Id; body: string }, Id>("messages:send"),
    search: makeFunctionReference<
      "action",
      { conversationId: Id; query: string; limit?: number },
      SearchHit[]
    >("messages:search"),
  },
};

const friendly: Record<string, string> = {
  UNAUTHENTICATED: "You are signed out. Sign in again.",
  FORBIDDEN: "You are not allowed to do that.",
  NOT_FOUND: "Not found.",
  RATE_LIMITED: "Too many requests; try again shortly.",
};

/** A message for the user from a ConvexError (`.data.code`, `.message`) or any error. */
export function errorMessage(err: unknown): string {
  const clean = (m: string) =>
    m
      .replace(/^\[Request ID: [^\]]*\]\s*/, "")
      .replace(/^Server Error\s*/, "")
      .replace(/^Uncaught ConvexError:\s*/, "")
      .trim();
  if (err instanceof ConvexError) {
    const data = err.data as any;
    if (typeof data === "string") return clean(data);
    if (data?.message) return String(data.message);
    const msg = clean(err.message ?? "");
    if (msg && msg !== "[object Object]") return msg;
    if (data?.code) return friendly[data.code] ?? String(data.code);
  }
  if (err instanceof Error) return clean(err.message) || "Something went wrong.";
  return "Something went wrong.";
}

/** The ConvexError code (UNAUTHENTICATED, FORBIDDEN, ...), if any. */
export function errorCode(err: unknown): string | undefined {
  return err instanceof ConvexError ? (err.data as any)?.code : undefined;
}

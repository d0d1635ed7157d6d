// Every error code, in every place the app shows errors, becomes a sentence of the app's own:
// never the server's text, never a code.
import { RippleError } from "@ripplehq/client";
import { ConvexError } from "convex/values";
import { describe, expect, test } from "vitest";
import { describeError, type ErrorContext } from "./errors";

const contexts: ErrorContext[] = ["signin", "signup", "start", "send", "search", "block", "thread"];
const serverText = "argument \"body\" is 4001 characters; the limit is 4000 [internal detail]";
const codes = [
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "NOT_FOUND",
  "INVALID_ARGUMENT",
  "CONFLICT",
  "RATE_LIMITED",
  "UNAVAILABLE",
  "INTERNAL",
  "CONNECTION_LOST",
  "NETWORK",
  "SOMETHING_NEW",
];

describe("describeError", () => {
  test.each(codes)("%s is a sentence in every context", (code) => {
    for (const context of contexts) {
      const text = describeError(new RippleError(code, serverText, { data: { retryAfterMs: 2500 } }), context);
      expect(text, `${code} in ${context}`).toMatch(/^[A-Z].*[.!]$/);
      expect(text).not.toContain("internal detail");
      expect(text).not.toContain(code);
    }
  });

  test("reasons the server gives pick the sentence", () => {
    const e = (code: string, data: Record<string, unknown>) => new RippleError(code, serverText, { data });
    expect(describeError(e("NOT_FOUND", { reason: "unknown_email" }), "start")).toBe(
      "No one with that email has an account here. Check the spelling, or ask them to sign up first.",
    );
    expect(describeError(e("INVALID_ARGUMENT", { reason: "self" }), "start")).toBe(
      "That's your own email. Enter the email of the person you want to talk to.",
    );
    expect(describeError(e("INVALID_ARGUMENT", { reason: "too_long", length: 4001 }), "send")).toBe(
      "Messages can be at most 4,000 characters (this one has 4,001). Shorten it or send it in parts.",
    );
    expect(describeError(e("FORBIDDEN", { reason: "blocked_by_them" }), "send")).toBe(
      "This person isn't accepting messages from you.",
    );
    expect(describeError(e("FORBIDDEN", { reason: "blocked_by_you" }), "send")).toBe(
      "You blocked this person. Unblock them to send messages.",
    );
    expect(describeError(e("RATE_LIMITED", { retryAfterMs: 2500 }), "send")).toBe(
      "You're going a bit fast. Try again in 3 seconds.",
    );
    expect(describeError(e("RATE_LIMITED", {}), "signin")).toBe("You're going a bit fast. Try again in 1 second.");
  });

  test("what the Convex client throws is read, not shown", () => {
    const fromServer = new ConvexError({ code: "NOT_FOUND", reason: "unknown_email", message: "no user has the email x@y.z" });
    expect(describeError(fromServer, "start")).toMatch(/^No one with that email/);
    const raw = new Error(
      "[CONVEX M(conversations:getOrCreateDirect)] [Request ID: 1f2e] Server Error\nUncaught Error: boom\n  Called by client",
    );
    const text = describeError(raw, "start");
    expect(text).toMatch(/^Something went wrong on our side\./);
    expect(text).not.toContain("CONVEX");
    expect(text).not.toContain("boom");
    expect(describeError(new Error("Connection lost while action was in flight"), "search")).toBe(
      "The connection dropped during the search. Try again.",
    );
  });
});

// Every error the chat can meet, in words for students and teachers: by code (RippleError.code)
// and, where the server gives one, reason (errorData.reason). Server text is never shown.
import { toRippleError } from "@ripplehq/client";

export type ErrorContext = "signin" | "signup" | "start" | "send" | "search" | "block" | "thread" | "group";

export const MAX_GROUP_MEMBERS = 200;
export const MAX_GROUP_NAME_LENGTH = 100;

/** Why one address of a group form could not be added (errorData.members[].reason). */
export function describeRefusedMember(reason: string): string {
  switch (reason) {
    case "unknown_email":
      return "no one with this email has an account here";
    case "bad_email":
      return "this doesn't look like an email address";
    case "blocked_by_you":
      return "you blocked this person";
    case "blocked_by_them":
      return "this person isn't accepting messages from you";
    default:
      return "this person can't be added";
  }
}

/** The addresses a group function refused, each with its reason, or [] for any other error. */
export function refusedMembers(err: unknown): { email: string; reason: string }[] {
  const e = toRippleError(err);
  if (e.data.reason !== "members_refused" || !Array.isArray(e.data.members)) return [];
  return (e.data.members as { email?: unknown; reason?: unknown }[]).map((m) => ({
    email: String(m.email ?? ""),
    reason: String(m.reason ?? ""),
  }));
}

export const MAX_MESSAGE_LENGTH = 4000;

export function describeError(err: unknown, context: ErrorContext): string {
  const e = toRippleError(err);
  const reason = typeof e.data.reason === "string" ? e.data.reason : "";
  switch (e.code) {
    case "UNAUTHENTICATED":
      if (context === "signin") return "That email and password don't match an account. Check them and try again.";
      return "You've been signed out. Sign in again to continue.";
    case "FORBIDDEN":
      if (reason === "blocked_by_them") return "This person isn't accepting messages from you.";
      if (reason === "blocked_by_you") return "You blocked this person. Unblock them to send messages.";
      if (reason === "not_admin") return "Only the group's admins can do that.";
      if (context === "block") return "You can only block someone you have a conversation with.";
      return "You can't open this conversation. It may not exist, or you're not part of it.";
    case "NOT_FOUND":
      if (reason === "unknown_email" || context === "start")
        return "No one with that email has an account here. Check the spelling, or ask them to sign up first.";
      if (reason === "not_member") return "That person is no longer in this group.";
      return "We couldn't find that. It may have been removed.";
    case "INVALID_ARGUMENT":
      if (reason === "members_refused") return "Some of those people can't be added; see the list below.";
      if (reason === "too_many_members")
        return `A group can have at most ${MAX_GROUP_MEMBERS} members, you included. Add fewer people.`;
      if (reason === "bad_name") return `Give the group a name of 1 to ${MAX_GROUP_NAME_LENGTH} characters.`;
      if (reason === "no_members" || reason === "too_few_members")
        return "Add at least one other person's email.";
      if (reason === "not_group") return "That only works in a group.";
      if (reason === "self") return "That's your own email. Enter the email of the person you want to talk to.";
      if (reason === "bad_email" || context === "start") return "That doesn't look like an email address.";
      if (reason === "too_long") {
        const length = Number(e.data.length);
        return `Messages can be at most ${MAX_MESSAGE_LENGTH.toLocaleString("en")} characters${
          length > 0 ? ` (this one has ${length.toLocaleString("en")})` : ""
        }. Shorten it or send it in parts.`;
      }
      if (context === "signup") return "Check your details: a name, a valid email, and a password of 8 to 128 characters.";
      if (context === "signin") return "Enter a valid email address and your password.";
      if (context === "send") return "That message can't be sent. Check it isn't empty and try again.";
      if (context === "search") return "That search can't be run. Try shorter or different words.";
      return "Something in that request wasn't right. Check it and try again.";
    case "CONFLICT":
      if (context === "signup") return "An account with that email already exists. Sign in instead.";
      return "Someone changed this at the same time. Try again.";
    case "RATE_LIMITED": {
      const s = Math.max(1, Math.ceil(Number(e.data.retryAfterMs) / 1000) || 1);
      return `You're going a bit fast. Try again in ${s} second${s === 1 ? "" : "s"}.`;
    }
    case "UNAVAILABLE":
      return "The chat server can't reach its database right now. Try again in a moment.";
    case "CONNECTION_LOST":
      if (context === "search") return "The connection dropped during the search. Try again.";
      return "The connection dropped before the server answered. Check whether it worked before trying again.";
    case "NETWORK":
      return "Can't reach the chat server. Check your internet connection and try again.";
    case "INTERNAL":
      return `Something went wrong on our side. Try again; if it keeps happening, tell your school's IT${
        e.requestId ? ` (reference ${e.requestId})` : ""
      }.`;
    default:
      return "Something went wrong. Try again.";
  }
}

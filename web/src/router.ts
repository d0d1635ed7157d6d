// A router for the chat's few URLs, on the History API: `/` (the conversation list) and
// `/c/:id` (a conversation; `?m=<messageId>` jumps to a message, `?q=<words>` searches it). The
// Go server answers every such path with index.html (web/embed.go), so reload works.
import { useSyncExternalStore } from "react";

/** IDs are strings on the wire (bigints in Postgres). */
export type Id = string;

export type Route =
  | { name: "home" }
  | { name: "conversation"; id: string; messageId: string | null; query: string | null };

const listeners = new Set<() => void>();

function subscribe(cb: () => void) {
  listeners.add(cb);
  window.addEventListener("popstate", cb);
  return () => {
    listeners.delete(cb);
    window.removeEventListener("popstate", cb);
  };
}

function current() {
  return window.location.pathname + window.location.search;
}

/** The current location (path and query), re-rendering on navigation and Back/Forward. */
export function useLocation(): string {
  return useSyncExternalStore(subscribe, current, current);
}

/** Goes to `to` (a path in this app): a new history entry, or the current one replaced. */
export function navigate(to: string, options: { replace?: boolean } = {}) {
  if (to === current()) return;
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  for (const l of listeners) l();
}

export function parseRoute(location: string): Route {
  const url = new URL(location, window.location.origin);
  const m = /^\/c\/(\d{1,19})\/?$/.exec(url.pathname);
  if (m) {
    return {
      name: "conversation",
      id: m[1],
      messageId: /^\d{1,19}$/.test(url.searchParams.get("m") ?? "") ? url.searchParams.get("m") : null,
      query: url.searchParams.get("q") || null,
    };
  }
  return { name: "home" };
}

export function conversationPath(id: string, extra: { m?: string; q?: string } = {}): string {
  const params = new URLSearchParams();
  if (extra.m) params.set("m", extra.m);
  if (extra.q) params.set("q", extra.q);
  const qs = params.toString();
  return `/c/${encodeURIComponent(id)}${qs ? `?${qs}` : ""}`;
}

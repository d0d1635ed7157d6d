// The message list: infinite scroll up that keeps one's place, the new-messages pill, day
// separators, the start marker, jumps to a message, announcements, and read state.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { RefObject } from "react";
import { useMutation, usePaginatedQuery } from "@ripplehq/client";
import { api, type Conversation, type Message, type User } from "./generated/api";
import { isGroup, senderName } from "./conversations";
import { formatClock, dayLabel } from "./format";
import type { Id } from "./router";
import { Linkified } from "./text";
import type { Pending } from "./thread";

export const PAGE = 30;

export function MessageList({
  conversationId,
  conversation,
  me,
  otherName,
  pending,
  onRetry,
  onDiscard,
  jumpTo,
  sentTick,
}: {
  conversationId: Id;
  conversation: Conversation | undefined;
  me: User;
  /** The other person's name, or in a group the group's. */
  otherName: string;
  pending: Pending[];
  onRetry: (p: Pending) => void;
  onDiscard: (key: number) => void;
  jumpTo: string | null;
  sentTick: number;
}) {
  const { results, status, loadMore } = usePaginatedQuery(api.messages.list, { conversationId }, { initialNumItems: PAGE });
  const messages = [...results].reverse();
  const markRead = useMutation(api.conversations.markRead);
  const scroller = useRef<HTMLDivElement>(null);
  const olderButton = useRef<HTMLElement>(null);
  const atBottom = useRef(true);
  const [showPill, setShowPill] = useState(false);
  const [announcement, setAnnouncement] = useState("");
  const anchor = useRef<{ id: string; offset: number } | null>(null);
  const newestSeen = useRef<string | null>(null);
  const jumped = useRef<string | null>(null);
  const [highlight, setHighlight] = useState<string | null>(null);
  const visible = useVisible();
  // Whether the view is at the newest message, as state (the ref is for the scroll handler).
  const [bottom, setBottom] = useState(true);

  const newest = messages[messages.length - 1];
  const oldest = messages[0];
  const group = isGroup(conversation);

  // The top-most visible message and its distance from the top, kept as the person scrolls:
  // whatever changes above it (older pages arriving), it stays where it is on screen.
  const rememberAnchor = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    setBottom(atBottom.current);
    if (atBottom.current) setShowPill(false);
    const items = el.querySelectorAll<HTMLElement>("[data-message-id]");
    for (const item of items) {
      if (item.offsetTop + item.offsetHeight > el.scrollTop) {
        anchor.current = { id: item.dataset.messageId!, offset: item.offsetTop - el.scrollTop };
        return;
      }
    }
    anchor.current = null;
  }, []);

  const scrollToBottom = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    el.scrollTop = el.scrollHeight;
    atBottom.current = true;
    setBottom(true);
    setShowPill(false);
  }, []);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el || status === "LoadingFirstPage") return;
    const first = newestSeen.current === null;
    const newArrived = !first && newest && newest._id !== newestSeen.current;
    if (newest) newestSeen.current = newest._id;
    if (jumpTo && jumped.current !== jumpTo) return; // the jump effect places the view
    if (first) {
      scrollToBottom();
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    } else if (anchor.current) {
      const item = el.querySelector<HTMLElement>(`[data-message-id="${anchor.current.id}"]`);
      if (item) el.scrollTop = item.offsetTop - anchor.current.offset;
      if (newArrived && newest.senderId !== me._id) setShowPill(true);
    }
    if (newArrived && newest.senderId !== me._id)
      setAnnouncement(
        newest.kind === "system"
          ? newest.body.slice(0, 200)
          : `${group ? senderName(conversation, newest.senderId) : otherName}: ${newest.body.slice(0, 200)}`,
      );
    rememberAnchor();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [newest?._id, oldest?._id, status, messages.length]);

  // Sending a message of one's own goes to the bottom, however far up one was reading.
  useLayoutEffect(() => {
    if (sentTick > 0) scrollToBottom();
  }, [sentTick, scrollToBottom]);

  // Older pages load as the top comes into view (the button does the same for keyboards).
  const loadOlder = useCallback(() => {
    if (status !== "CanLoadMore") return;
    rememberAnchor();
    atBottom.current = false;
    loadMore(PAGE);
  }, [status, loadMore, rememberAnchor]);
  useEffect(() => {
    const el = scroller.current;
    const target = olderButton.current;
    if (!el || !target) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadOlder();
    }, { root: el });
    io.observe(target);
    return () => io.disconnect();
  }, [loadOlder]);

  // A jump to a message (from search): load older pages until it is there, then show it.
  useEffect(() => {
    if (!jumpTo || jumped.current === jumpTo || status === "LoadingFirstPage" || status === "LoadingMore") return;
    const el = scroller.current;
    const item = el?.querySelector<HTMLElement>(`[data-message-id="${jumpTo}"]`);
    if (item && el) {
      jumped.current = jumpTo;
      el.scrollTop = item.offsetTop - el.clientHeight / 3;
      setHighlight(jumpTo);
      item.focus({ preventScroll: true });
      rememberAnchor();
      return;
    }
    if (status === "CanLoadMore") loadMore(100);
    else jumped.current = jumpTo; // not in this conversation (any more): stay at the bottom
  }, [jumpTo, status, results.length, loadMore, rememberAnchor]);

  // Read state: when the newest message is on screen and the tab is visible, it is read.
  const unread = conversation?.unreadCount ?? 0;
  const marked = useRef<string | null>(null);
  const newestId = newest?._id;
  useEffect(() => {
    if (!newestId || unread === 0 || !visible || !bottom || marked.current === newestId) return;
    marked.current = newestId;
    markRead({ conversationId, messageId: newestId }).catch(() => {
      marked.current = null; // tried again on the next change
    });
  }, [newestId, unread, visible, bottom, conversationId, markRead]);

  const lastMine = [...messages].reverse().find((m) => m.senderId === me._id)?._id;
  let lastDay = "";
  return (
    <div className="messages-wrap">
      <div className="messages" ref={scroller} onScroll={rememberAnchor} tabIndex={0} aria-label="Messages">
        {status === "LoadingFirstPage" && <p className="loading">Loading messages…</p>}
        {status === "CanLoadMore" || status === "LoadingMore" ? (
          <button type="button" ref={olderButton as RefObject<HTMLButtonElement>} className="link older" onClick={loadOlder} disabled={status === "LoadingMore"}>
            {status === "LoadingMore" ? "Loading older messages…" : "Load older messages"}
          </button>
        ) : (
          <span ref={olderButton} />
        )}
        {status === "Exhausted" && (
          <p className="start-marker" data-testid="start-marker">
            {group ? `This is the start of ${otherName}.` : `This is the start of your conversation with ${otherName}.`}
          </p>
        )}
        {status !== "LoadingFirstPage" && messages.length === 0 && pending.length === 0 && (
          <p className="empty">No messages yet. Say hello!</p>
        )}
        <ol>
          {messages.map((m: Message) => {
            const mine = m.senderId === me._id && m.kind !== "system";
            const day = dayLabel(m._creationTime);
            const separator = day !== lastDay;
            lastDay = day;
            const from = mine ? "You" : group ? senderName(conversation, m.senderId) : otherName;
            const blockedSender = group && !mine && !!conversation?.blockedByMe.includes(m.senderId);
            const dayItem = separator && (
              <li key={`day-${m._id}`} className="day" data-testid="day-separator">
                <span>{day}</span>
              </li>
            );
            if (m.kind === "system")
              return [
                dayItem,
                <li key={m._id} className="system" data-testid="system-line" data-message-id={m._id} tabIndex={-1}>
                  <span>{m.body}</span>{" "}
                  <time className="time" dateTime={new Date(m._creationTime).toISOString()}>
                    {formatClock(m._creationTime)}
                  </time>
                </li>,
              ];
            return [
              dayItem,
              <li
                key={m._id}
                className={`message ${mine ? "mine" : "theirs"}${highlight === m._id ? " highlighted" : ""}`}
                data-testid="message"
                data-message-id={m._id}
                data-status={mine ? "sent" : undefined}
                tabIndex={-1}
              >
                {group && !mine ? (
                  <span className="sender">
                    {from}
                    <span className="sr-only">: </span>
                  </span>
                ) : (
                  <span className="sr-only">{from}: </span>
                )}
                {blockedSender ? (
                  <details className="body blocked-message">
                    <summary>Message from someone you blocked</summary>
                    <span>
                      <Linkified text={m.body} />
                    </span>
                  </details>
                ) : (
                  <span className="body">
                    <Linkified text={m.body} />
                  </span>
                )}
                <span className="meta">
                  <time className="time" dateTime={new Date(m._creationTime).toISOString()}>
                    {formatClock(m._creationTime)}
                  </time>
                  {mine && m._id === lastMine && pending.length === 0 && <span className="status"> · Sent</span>}
                </span>
              </li>,
            ];
          })}
          {pending.map((p) => (
            <li key={`pending-${p.key}`} className={`message mine ${p.status}`} data-testid="message" data-status={p.status}>
              <span className="sr-only">You: </span>
              <span className="body">
                <Linkified text={p.body} />
              </span>
              {p.status === "sending" ? (
                <span className="meta">
                  <span className="status">Sending…</span>
                </span>
              ) : (
                <span className="failed-note">
                  <span role="alert">Not sent. {p.error}</span>{" "}
                  <button type="button" onClick={() => onRetry(p)}>
                    Retry
                  </button>{" "}
                  <button type="button" onClick={() => onDiscard(p.key)}>
                    Delete
                  </button>
                </span>
              )}
            </li>
          ))}
        </ol>
      </div>
      {showPill && (
        <button type="button" className="pill" onClick={scrollToBottom}>
          New messages <span aria-hidden="true">↓</span>
        </button>
      )}
      <div className="sr-only" aria-live="polite" data-testid="announcer">
        {announcement}
      </div>
    </div>
  );
}

/** Whether the page is visible (not a background tab or minimised). */
export function useVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const update = () => setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  return visible;
}

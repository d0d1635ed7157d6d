// The conversation list (with unread badges and emails), starting a chat, in-app links.
import { useState } from "react";
import type { FormEvent, MouseEvent } from "react";
import { useMutation } from "@ripplehq/client";
import { api, type Conversation, type Participant } from "./generated/api";
import { useOnline, OFFLINE_REASON } from "./connection";
import { describeError } from "./errors";
import { formatTime } from "./format";
import { conversationPath, navigate, type Id } from "./router";

export function StartChat() {
  const start = useMutation(api.conversations.getOrCreateDirect);
  const online = useOnline();
  const [email, setEmail] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!online || busy) return;
    setError(null);
    setBusy(true);
    const from = window.location.pathname + window.location.search;
    try {
      const id = await start({ email: email.trim() });
      setEmail("");
      // Only switch threads if the person has not gone elsewhere meanwhile.
      if (window.location.pathname + window.location.search === from) navigate(conversationPath(id));
    } catch (err) {
      setError(describeError(err, "start"));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="start" onSubmit={submit}>
      <label htmlFor="start-email">Start a chat by email</label>
      <div className="row">
        <input
          id="start-email"
          type="email"
          placeholder="name@school.edu"
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          required
        />
        <button
          type="submit"
          disabled={busy || !email.trim() || !online}
          aria-describedby={!online ? "start-offline" : undefined}
        >
          Start
        </button>
      </div>
      {!online && (
        <p id="start-offline" className="hint">
          {OFFLINE_REASON}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function otherParticipant(c: Conversation, me: Participant): Participant | undefined {
  return c.participants.find((p) => p._id !== me._id) ?? c.participants[0];
}

export function unreadLabel(n: number) {
  return n > 99 ? "99+" : String(n);
}

export function ConversationList({
  me,
  conversations,
  selected,
}: {
  me: Participant;
  conversations: Conversation[] | undefined;
  selected: Id | null;
}) {
  if (conversations === undefined) return <p className="loading">Loading conversations…</p>;
  if (conversations.length === 0) return <p className="empty">No conversations yet.</p>;
  return (
    <ul className="conversations">
      {conversations.map((c) => {
        const other = otherParticipant(c, me);
        const preview = c.lastMessage
          ? `${c.lastMessage.senderId === me._id ? "You: " : ""}${c.lastMessage.body}`
          : "No messages yet";
        const href = conversationPath(c._id);
        return (
          <li key={c._id}>
            <a
              href={href}
              className={`conversation${c.unreadCount > 0 ? " unread" : ""}`}
              aria-current={c._id === selected ? "page" : undefined}
              data-testid="conversation"
              onClick={(e) => followLink(e, href)}
            >
              <span className="name">
                {other?.name ?? "Unknown"} <span className="email">{other?.email}</span>
              </span>
              {c.unreadCount > 0 && (
                <span className="badge" data-testid="unread-badge">
                  <span aria-hidden="true">{unreadLabel(c.unreadCount)}</span>
                  <span className="sr-only">, {unreadLabel(c.unreadCount)} unread</span>
                </span>
              )}
              <span className="preview">{preview}</span>
              {c.lastMessageTime != null && <time className="time">{formatTime(c.lastMessageTime)}</time>}
            </a>
          </li>
        );
      })}
    </ul>
  );
}

/** A plain click on an in-app link navigates without a reload; modified clicks open tabs. */
export function followLink(e: MouseEvent<HTMLAnchorElement>, href: string) {
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(href);
}

export function BackLink() {
  return (
    <a href="/" className="back" onClick={(e) => followLink(e, "/")}>
      <span aria-hidden="true">‹ </span>Conversations
    </a>
  );
}

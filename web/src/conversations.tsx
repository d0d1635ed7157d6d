// The conversation list (with unread badges and emails), starting a chat or a group, in-app
// links.
import { useId, useState } from "react";
import type { FormEvent, MouseEvent } from "react";
import { useMutation } from "@ripplehq/client";
import { api, type Conversation, type Participant, type User } from "./generated/api";
import { useOnline, OFFLINE_REASON } from "./connection";
import { describeError, describeRefusedMember, refusedMembers, MAX_GROUP_NAME_LENGTH } from "./errors";
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

/** Splits what a person typed into a list of addresses (commas, semicolons, spaces, lines). */
export function splitEmails(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((e) => e.trim())
    .filter((e) => e !== "");
}

/**
 * An email field list's submission result: the addresses the server refused, each with its
 * reason, as a list the person can read and fix (each address named, so a screen reader says
 * which one).
 */
export function RefusedList({ id, refused }: { id: string; refused: { email: string; reason: string }[] }) {
  if (refused.length === 0) return null;
  return (
    <ul id={id} className="refused" data-testid="refused-members">
      {refused.map((r) => (
        <li key={r.email}>
          <strong>{r.email}</strong>: {describeRefusedMember(r.reason)}
        </li>
      ))}
    </ul>
  );
}

export function NewGroup() {
  const create = useMutation(api.conversations.createGroup);
  const online = useOnline();
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [emails, setEmails] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [refused, setRefused] = useState<{ email: string; reason: string }[]>([]);
  const [busy, setBusy] = useState(false);
  const ids = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!online || busy) return;
    setError(null);
    setRefused([]);
    setBusy(true);
    try {
      const id = await create({ name: name.trim(), emails: splitEmails(emails) });
      setName("");
      setEmails("");
      setOpen(false);
      navigate(conversationPath(id));
    } catch (err) {
      setError(describeError(err, "group"));
      setRefused(refusedMembers(err));
    } finally {
      setBusy(false);
    }
  }

  if (!open)
    return (
      <button type="button" className="new-group" disabled={!online} onClick={() => setOpen(true)} aria-expanded={false}>
        New group…
      </button>
    );
  return (
    <form className="start group-form" onSubmit={submit} aria-label="New group">
      <label htmlFor={`${ids}-name`}>Group name</label>
      <input
        id={`${ids}-name`}
        value={name}
        maxLength={MAX_GROUP_NAME_LENGTH}
        onChange={(e) => setName(e.target.value)}
        required
      />
      <label htmlFor={`${ids}-emails`}>Members' emails</label>
      <textarea
        id={`${ids}-emails`}
        value={emails}
        rows={3}
        placeholder="one@school.edu, two@school.edu"
        onChange={(e) => setEmails(e.target.value)}
        aria-describedby={`${ids}-hint${refused.length ? ` ${ids}-refused` : ""}`}
        aria-invalid={refused.length > 0 || undefined}
        required
      />
      <p id={`${ids}-hint`} className="hint">
        Separate addresses with commas or new lines. You'll be the group's admin.
      </p>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <RefusedList id={`${ids}-refused`} refused={refused} />
      <div className="row">
        <button type="submit" className="primary" disabled={busy || !online || !name.trim() || !emails.trim()}>
          Create group
        </button>
        <button type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function otherParticipant(c: Conversation, me: Pick<User, "_id">): Participant | undefined {
  return c.participants.find((p) => p._id !== me._id) ?? c.participants[0];
}

export function isGroup(c: Conversation | undefined): boolean {
  return c?.type === "group";
}

/** A conversation's title: the group's name, or the other person's. */
export function conversationTitle(c: Conversation, me: Pick<User, "_id">): string {
  if (isGroup(c)) return c.name ?? "Group";
  return otherParticipant(c, me)?.name ?? "Unknown";
}

/** The name of a message's sender in a conversation (a former member has none there). */
export function senderName(c: Conversation | undefined, senderId: string): string {
  return c?.participants.find((p) => p._id === senderId)?.name ?? "Former member";
}

export function memberCount(c: Conversation): string {
  return `${c.participants.length} member${c.participants.length === 1 ? "" : "s"}`;
}

export function unreadLabel(n: number) {
  return n > 99 ? "99+" : String(n);
}

export function ConversationList({
  me,
  conversations,
  selected,
}: {
  me: User;
  conversations: Conversation[] | undefined;
  selected: Id | null;
}) {
  if (conversations === undefined) return <p className="loading">Loading conversations…</p>;
  if (conversations.length === 0) return <p className="empty">No conversations yet.</p>;
  return (
    <ul className="conversations">
      {conversations.map((c) => {
        const other = otherParticipant(c, me);
        const group = isGroup(c);
        const last = c.lastMessage;
        const from = !last || last.kind === "system" ? "" : last.senderId === me._id ? "You: " : group ? `${senderName(c, last.senderId)}: ` : "";
        const preview = last ? `${from}${last.body}` : "No messages yet";
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
                {conversationTitle(c, me)}{" "}
                <span className="email">{group ? memberCount(c) : other?.email}</span>
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

import React, { Component, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { ClipboardEvent, FormEvent, KeyboardEvent, MouseEvent, ReactNode } from "react";
import {
  useAction,
  useAuth,
  useConnectionState,
  useMutation,
  usePaginatedQuery,
  useQuery,
  type UseAuth,
} from "@ripplehq/client";
import { api } from "./generated/api";
import type { Conversation, Message, Participant, SearchHit } from "./generated/api";
import { describeError, MAX_MESSAGE_LENGTH, type ErrorContext } from "./errors";
import { conversationPath, navigate, parseRoute, useLocation } from "./router";
import { Highlighted, Linkified, queryWords } from "./text";

type Id = string;
type Auth = UseAuth;

export function App() {
  const auth = useAuth();
  // A stored session shows the chat at once; its queries wait for the server to accept it.
  if (!auth.session) return <AuthScreen auth={auth} />;
  return (
    <ErrorBoundary fallback={(err) => <FatalError message={describeError(err, "thread")} auth={auth} />}>
      <Chat auth={auth} />
    </ErrorBoundary>
  );
}

// ---------- sign in / sign up ----------

function AuthScreen({ auth }: { auth: Auth }) {
  const [mode, setMode] = useState<"signin" | "signup">("signin");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signup = mode === "signup";

  useEffect(() => {
    document.title = signup ? "Create your account · Ripple Chat" : "Sign in · Ripple Chat";
  }, [signup]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      if (signup) await auth.signUp({ email: email.trim(), password, name: name.trim() });
      else await auth.signIn({ email: email.trim(), password });
    } catch (err) {
      setError(describeError(err, mode));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="auth">
      <form className="card" onSubmit={submit} aria-labelledby="auth-title">
        <h1 id="auth-title">{signup ? "Create your account" : "Sign in to Ripple Chat"}</h1>
        {signup && (
          <label>
            Name
            <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoComplete="name" />
          </label>
        )}
        <label>
          Email
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="email" autoFocus />
        </label>
        <label>
          Password
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
            minLength={8}
            maxLength={128}
            autoComplete={signup ? "new-password" : "current-password"}
          />
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {signup ? "Sign up" : "Sign in"}
        </button>
        <p className="switch">
          {signup ? "Already have an account?" : "New here?"}{" "}
          <button
            type="button"
            className="link"
            onClick={() => {
              setMode(signup ? "signin" : "signup");
              setError(null);
            }}
          >
            {signup ? "Sign in" : "Create an account"}
          </button>
        </p>
      </form>
    </main>
  );
}

// ---------- the chat ----------

/** Whether the server can be reached now; while not, actions that need it are disabled. */
function useOnline(): boolean {
  const { state } = useConnectionState();
  return state === "connected" || state === "connecting";
}

const OFFLINE_REASON = "You're offline. This needs a connection.";

function Chat({ auth }: { auth: Auth }) {
  const me = useQuery(api.users.me, {});
  const conversations = useQuery(api.conversations.list, {});
  const route = parseRoute(useLocation());
  const selected = route.name === "conversation" ? route.id : null;
  useUnreadTitle(conversations);
  const notifications = useNotifications(conversations, me ?? null);
  const sends = usePendingSends();

  if (me === undefined) return <p className="loading">Loading…</p>;
  if (me === null) return <FatalError message="Your session has ended. Sign in again." auth={auth} />;

  const conversation = conversations?.find((c) => c._id === selected);
  return (
    <div className={`chat ${selected ? "show-thread" : "show-list"}`}>
      <header className="topbar">
        <h1 className="brand">Ripple Chat</h1>
        <span className="whoami">
          Signed in as <strong>{me.name}</strong> <span className="email">({me.email})</span>
        </span>
        {notifications.supported && (
          <button
            type="button"
            onClick={notifications.toggle}
            aria-pressed={notifications.enabled}
            aria-describedby={notifications.denied ? "notify-denied" : undefined}
          >
            {notifications.enabled ? "Notifications on" : "Notify me"}
          </button>
        )}
        {notifications.denied && (
          <span id="notify-denied" className="hint" role="alert">
            Notifications are blocked for this site in your browser's settings.
          </span>
        )}
        <button type="button" onClick={() => void auth.signOut()}>
          Sign out
        </button>
      </header>
      <ConnectionBanner />
      <nav className="sidebar" aria-label="Conversations">
        <StartChat />
        <ConversationList me={me} conversations={conversations} selected={selected} />
      </nav>
      <main className="thread-pane">
        {route.name === "conversation" ? (
          <ErrorBoundary key={route.id} fallback={(err) => <ThreadError message={describeError(err, "thread")} />}>
            <Thread
              key={route.id}
              conversationId={route.id}
              conversation={conversation}
              me={me}
              jumpTo={route.messageId}
              initialQuery={route.query}
              sends={sends}
            />
          </ErrorBoundary>
        ) : (
          <p className="empty">Pick a conversation, or start one by email.</p>
        )}
      </main>
    </div>
  );
}

function ThreadError({ message }: { message: string }) {
  return (
    <div className="thread-error">
      <BackLink />
      <p className="error" role="alert">
        {message}
      </p>
    </div>
  );
}

/** A status line while the connection is down; says when it is back. */
function ConnectionBanner() {
  const { state } = useConnectionState();
  const [recovered, setRecovered] = useState(false);
  const wasDown = useRef(false);
  useEffect(() => {
    if (state === "reconnecting" || state === "offline") {
      wasDown.current = true;
      setRecovered(false);
    } else if (state === "connected" && wasDown.current) {
      wasDown.current = false;
      setRecovered(true);
      const t = setTimeout(() => setRecovered(false), 4000);
      return () => clearTimeout(t);
    }
  }, [state]);
  let text = "";
  if (state === "offline") text = "You're offline. Messages you send will go out when you're back online.";
  else if (state === "reconnecting") text = "Connection lost. Reconnecting… Messages you send will go out once it's back.";
  else if (recovered) text = "Connected again.";
  return (
    <div role="status" className={`banner ${text ? (recovered ? "ok" : "down") : "hidden"}`} data-testid="connection-banner">
      {text}
    </div>
  );
}

/** The total of unread messages in the tab title: "(3) Ripple Chat". */
function useUnreadTitle(conversations: Conversation[] | undefined) {
  const total = conversations?.reduce((n, c) => n + c.unreadCount, 0) ?? 0;
  useEffect(() => {
    document.title = total > 0 ? `(${total > 99 ? "99+" : total}) Ripple Chat` : "Ripple Chat";
  }, [total]);
}

const NOTIFY_KEY = "ripple.notify";

/**
 * Optional browser notifications: when switched on (the browser asks for permission), a message
 * from someone else that arrives while the tab is hidden shows a notification.
 */
function useNotifications(conversations: Conversation[] | undefined, me: Participant | null) {
  const supported = typeof window !== "undefined" && "Notification" in window;
  const [enabled, setEnabled] = useState(
    () => supported && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "1",
  );
  const seen = useRef<Map<string, number> | null>(null);

  useEffect(() => {
    if (!conversations || !me) return;
    const previous = seen.current;
    const next = new Map<string, number>();
    for (const c of conversations) next.set(c._id, c.lastMessage?._creationTime ?? 0);
    seen.current = next;
    if (!previous || !enabled || document.visibilityState !== "hidden") return;
    for (const c of conversations) {
      const m = c.lastMessage;
      if (!m || m.senderId === me._id || c.unreadCount === 0) continue;
      if ((previous.get(c._id) ?? 0) >= m._creationTime) continue;
      const from = otherParticipant(c, me)?.name ?? "Someone";
      const n = new Notification(`New message from ${from}`, { body: m.body.slice(0, 140), tag: `conversation-${c._id}` });
      n.onclick = () => {
        window.focus();
        navigate(conversationPath(c._id));
      };
    }
  }, [conversations, me, enabled]);

  const [denied, setDenied] = useState(false);
  const toggle = useCallback(async () => {
    if (enabled) {
      localStorage.removeItem(NOTIFY_KEY);
      setEnabled(false);
      return;
    }
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission === "granted") {
      localStorage.setItem(NOTIFY_KEY, "1");
      setEnabled(true);
    }
    setDenied(permission === "denied");
  }, [enabled]);

  return { supported, enabled, denied, toggle: () => void toggle() };
}

function StartChat() {
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

function otherParticipant(c: Conversation, me: Participant): Participant | undefined {
  return c.participants.find((p) => p._id !== me._id) ?? c.participants[0];
}

function unreadLabel(n: number) {
  return n > 99 ? "99+" : String(n);
}

function ConversationList({
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
function followLink(e: MouseEvent<HTMLAnchorElement>, href: string) {
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(href);
}

function BackLink() {
  return (
    <a href="/" className="back" onClick={(e) => followLink(e, "/")}>
      <span aria-hidden="true">‹ </span>Conversations
    </a>
  );
}

type Pending = { key: number; conversationId: Id; body: string; status: "sending" | "failed"; error?: string };

type PendingSends = {
  list: Pending[];
  submit: (conversationId: Id, body: string) => void;
  retry: (p: Pending) => void;
  discard: (key: number) => void;
};

/**
 * Sends that the server has not confirmed, for every conversation: kept by the chat, not the
 * thread, so a message sent during an outage still shows (and can still fail and be retried)
 * after one has looked at another conversation. Each attempt is one mutation: the client
 * resends it after a reconnect under the same request id (the server runs it once); a refused
 * one is offered again only by Retry.
 */
function usePendingSends(): PendingSends {
  const send = useMutation(api.messages.send);
  const [list, setList] = useState<Pending[]>([]);
  const nextKey = useRef(1);
  const retry = useCallback(
    (p: Pending) => {
      setList((l) => l.map((x) => (x.key === p.key ? { ...x, status: "sending", error: undefined } : x)));
      send({ conversationId: p.conversationId, body: p.body })
        .then(() => setList((l) => l.filter((x) => x.key !== p.key)))
        .catch((err) =>
          setList((l) => l.map((x) => (x.key === p.key ? { ...x, status: "failed", error: describeError(err, "send") } : x))),
        );
    },
    [send],
  );
  const submit = useCallback(
    (conversationId: Id, body: string) => {
      const p: Pending = { key: nextKey.current++, conversationId, body, status: "sending" };
      setList((l) => [...l, p]);
      retry(p);
    },
    [retry],
  );
  const discard = useCallback((key: number) => setList((l) => l.filter((x) => x.key !== key)), []);
  return { list, submit, retry, discard };
}

function Thread({
  conversationId,
  conversation,
  me,
  jumpTo,
  initialQuery,
  sends,
}: {
  conversationId: Id;
  conversation: Conversation | undefined;
  me: Participant;
  jumpTo: string | null;
  initialQuery: string | null;
  sends: PendingSends;
}) {
  const other = conversation ? otherParticipant(conversation, me) : undefined;
  const blocked = !!other && !!conversation?.blockedByMe.includes(other._id);
  const pending = sends.list.filter((p) => p.conversationId === conversationId);
  const [sentTick, setSentTick] = useState(0);
  const submit = (body: string) => {
    sends.submit(conversationId, body);
    setSentTick((t) => t + 1);
  };

  return (
    <section className="thread" aria-labelledby="thread-title">
      <header className="thread-header">
        <BackLink />
        <div className="who">
          <h2 id="thread-title">{other?.name ?? "Conversation"}</h2>
          {other && <span className="email">{other.email}</span>}
        </div>
        {other && <BlockControl other={other} blocked={blocked} />}
      </header>
      <Search conversationId={conversationId} me={me} otherName={other?.name ?? "Them"} initialQuery={initialQuery} />
      <MessageList
        conversationId={conversationId}
        conversation={conversation}
        me={me}
        otherName={other?.name ?? "They"}
        pending={pending}
        onRetry={sends.retry}
        onDiscard={sends.discard}
        jumpTo={jumpTo}
        sentTick={sentTick}
      />
      {blocked ? (
        <p className="blocked-note">You blocked {other?.name}. Unblock them to send messages.</p>
      ) : (
        <Composer onSend={submit} />
      )}
    </section>
  );
}

function BlockControl({ other, blocked }: { other: Participant; blocked: boolean }) {
  const block = useMutation(api.users.block);
  const unblock = useMutation(api.users.unblock);
  const online = useOnline();
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(fn: typeof block) {
    setBusy(true);
    setError(null);
    try {
      await fn({ userId: other._id });
      setConfirming(false);
    } catch (err) {
      setError(describeError(err, "block"));
    } finally {
      setBusy(false);
    }
  }

  const offlineNote = !online ? { "aria-describedby": "block-offline" } : {};
  return (
    <div className="block">
      {blocked ? (
        <button type="button" disabled={busy || !online} onClick={() => void run(unblock)} {...offlineNote}>
          Unblock
        </button>
      ) : confirming ? (
        <div className="confirm" role="group" aria-label={`Block ${other.name}?`}>
          <span>
            Block {other.name}? They won't be able to message you or start a chat with you.
          </span>
          <button type="button" className="danger" disabled={busy || !online} onClick={() => void run(block)} {...offlineNote}>
            Block
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      ) : (
        <button type="button" disabled={!online} onClick={() => setConfirming(true)} {...offlineNote}>
          Block…
        </button>
      )}
      {!online && (
        <span id="block-offline" className="sr-only">
          {OFFLINE_REASON}
        </span>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

const PAGE = 30;

function MessageList({
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
  me: Participant;
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
    if (newArrived && newest.senderId !== me._id) setAnnouncement(`${otherName}: ${newest.body.slice(0, 200)}`);
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
          <button type="button" ref={olderButton as React.RefObject<HTMLButtonElement>} className="link older" onClick={loadOlder} disabled={status === "LoadingMore"}>
            {status === "LoadingMore" ? "Loading older messages…" : "Load older messages"}
          </button>
        ) : (
          <span ref={olderButton} />
        )}
        {status === "Exhausted" && (
          <p className="start-marker" data-testid="start-marker">
            This is the start of your conversation with {otherName}.
          </p>
        )}
        {status !== "LoadingFirstPage" && messages.length === 0 && pending.length === 0 && (
          <p className="empty">No messages yet. Say hello!</p>
        )}
        <ol>
          {messages.map((m: Message) => {
            const mine = m.senderId === me._id;
            const day = dayLabel(m._creationTime);
            const separator = day !== lastDay;
            lastDay = day;
            return [
              separator && (
                <li key={`day-${m._id}`} className="day" data-testid="day-separator">
                  <span>{day}</span>
                </li>
              ),
              <li
                key={m._id}
                className={`message ${mine ? "mine" : "theirs"}${highlight === m._id ? " highlighted" : ""}`}
                data-testid="message"
                data-message-id={m._id}
                data-status={mine ? "sent" : undefined}
                tabIndex={-1}
              >
                <span className="sr-only">{mine ? "You" : otherName}: </span>
                <span className="body">
                  <Linkified text={m.body} />
                </span>
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
function useVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const update = () => setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  return visible;
}

function Composer({ onSend }: { onSend: (body: string) => void }) {
  const [body, setBody] = useState("");
  const [pasteWarning, setPasteWarning] = useState<string | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const text = body.trim();
  const length = [...text].length;
  const over = length - MAX_MESSAGE_LENGTH;
  const left = MAX_MESSAGE_LENGTH - [...body].length;
  const nearLimit = left <= 500;
  const online = useOnline();

  function submit(e?: FormEvent) {
    e?.preventDefault();
    if (text === "" || over > 0) return;
    onSend(text);
    setBody("");
    setPasteWarning(null);
    input.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit();
    }
  }

  function onPaste(e: ClipboardEvent<HTMLTextAreaElement>) {
    const pasted = e.clipboardData.getData("text");
    const t = e.currentTarget;
    const after = [...t.value].length - [...t.value.slice(t.selectionStart, t.selectionEnd)].length + [...pasted].length;
    setPasteWarning(
      after > MAX_MESSAGE_LENGTH
        ? `That paste makes the message ${after.toLocaleString("en")} characters, over the ${MAX_MESSAGE_LENGTH.toLocaleString(
            "en",
          )} limit. Nothing was cut: shorten it or send it in parts.`
        : null,
    );
  }

  const describedBy = [nearLimit ? "composer-counter" : "", !online ? "composer-offline" : ""].filter(Boolean).join(" ");
  return (
    <form className="send" onSubmit={submit}>
      <label htmlFor="message-body" className="sr-only">
        Message
      </label>
      <textarea
        id="message-body"
        ref={input}
        rows={2}
        placeholder="Write a message (Enter to send, Shift+Enter for a new line)"
        value={body}
        onChange={(e) => {
          setBody(e.target.value);
          if ([...e.target.value].length <= MAX_MESSAGE_LENGTH) setPasteWarning(null);
        }}
        onKeyDown={onKeyDown}
        onPaste={onPaste}
        aria-describedby={describedBy || undefined}
        aria-invalid={over > 0 || undefined}
        // Not on phones: the keyboard would cover the conversation one just opened.
        autoFocus={window.matchMedia("(min-width: 701px)").matches}
      />
      <button type="submit" className="primary" disabled={text === "" || over > 0}>
        Send
      </button>
      {nearLimit && (
        <p id="composer-counter" className={`counter${left < 0 ? " over" : ""}`} data-testid="counter">
          {left >= 0
            ? `${left.toLocaleString("en")} character${left === 1 ? "" : "s"} left`
            : `${(-left).toLocaleString("en")} character${left === -1 ? "" : "s"} over the ${MAX_MESSAGE_LENGTH.toLocaleString("en")} limit`}
        </p>
      )}
      {!online && (
        <p id="composer-offline" className="hint">
          You're offline: what you send now shows as "Sending…" and goes out once you're back.
        </p>
      )}
      {pasteWarning && (
        <p className="error" role="alert">
          {pasteWarning}
        </p>
      )}
    </form>
  );
}

function Search({
  conversationId,
  me,
  otherName,
  initialQuery,
}: {
  conversationId: Id;
  me: Participant;
  otherName: string;
  initialQuery: string | null;
}) {
  const search = useAction(api.messages.search);
  const online = useOnline();
  const [query, setQuery] = useState(initialQuery ?? "");
  const [searched, setSearched] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ran = useRef(false);

  const run = useCallback(
    async (q: string) => {
      ran.current = true; // the URL this search writes does not start it again
      setError(null);
      setBusy(true);
      try {
        const result = await search({ conversationId, query: q, limit: 10 });
        setHits(result);
        setSearched(q);
        navigate(conversationPath(conversationId, { q }), { replace: true });
      } catch (err) {
        setError(describeError(err, "search" satisfies ErrorContext));
        setHits(null);
      } finally {
        setBusy(false);
      }
    },
    [conversationId, search],
  );

  useEffect(() => {
    if (initialQuery && !ran.current && online) {
      ran.current = true;
      void run(initialQuery);
    }
  }, [initialQuery, online, run]);

  function submit(e: FormEvent) {
    e.preventDefault();
    if (!query.trim() || !online) return;
    void run(query.trim());
  }

  const words = queryWords(searched);
  return (
    <div className="search">
      <form role="search" onSubmit={submit} className="row" aria-label="Search this conversation">
        <label htmlFor="search-query" className="sr-only">
          Search messages
        </label>
        <input
          id="search-query"
          type="search"
          placeholder="Search this conversation"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <button
          type="submit"
          disabled={busy || !query.trim() || !online}
          aria-describedby={!online ? "search-offline" : undefined}
        >
          {busy ? "Searching…" : "Search"}
        </button>
        {hits && (
          <button
            type="button"
            className="link"
            onClick={() => {
              setHits(null);
              setQuery("");
              navigate(conversationPath(conversationId), { replace: true });
            }}
          >
            Clear
          </button>
        )}
      </form>
      {!online && (
        <p id="search-offline" className="hint">
          {OFFLINE_REASON}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {hits && (
        <section aria-label="Search results" className="hits">
          {hits.length === 0 ? (
            <p className="empty" data-testid="no-matches">
              No messages match “{searched}”. Try other words.
            </p>
          ) : (
            <ol>
              {hits.map((h) => {
                const href = conversationPath(conversationId, { m: h._id, q: searched });
                return (
                  <li key={h._id}>
                    <a href={href} className="hit" data-testid="search-hit" onClick={(e) => followLink(e, href)}>
                      <span className="who">{h.senderId === me._id ? "You" : otherName}</span>
                      <span className="body">
                        {/* no links inside the hit's own link */}
                        <Highlighted text={h.body} words={words} />
                      </span>
                      <time className="time">{formatTime(h._creationTime)}</time>
                    </a>
                  </li>
                );
              })}
            </ol>
          )}
        </section>
      )}
    </div>
  );
}

// ---------- helpers ----------

function formatClock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function formatTime(ms: number): string {
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? formatClock(ms) : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

function dayLabel(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], {
    weekday: "long",
    month: "long",
    day: "numeric",
    year: d.getFullYear() === today.getFullYear() ? undefined : "numeric",
  });
}

function FatalError({ message, auth }: { message: string; auth: Auth }) {
  return (
    <main className="auth">
      <div className="card" role="alert">
        <h1>Something went wrong</h1>
        <p>{message}</p>
        <button type="button" className="primary" onClick={() => void auth.signOut()}>
          Sign in again
        </button>
      </div>
    </main>
  );
}

class ErrorBoundary extends Component<
  { fallback: (err: unknown) => ReactNode; children: ReactNode },
  { error: unknown }
> {
  state = { error: null as unknown };
  static getDerivedStateFromError(error: unknown) {
    return { error };
  }
  render() {
    return this.state.error ? this.props.fallback(this.state.error) : this.props.children;
  }
}

import { Component, useEffect, useRef, useState } from "react";
import type { FormEvent, KeyboardEvent, ReactNode } from "react";
import {
  errorMessage,
  RippleError,
  useAction,
  useAuth,
  useMutation,
  usePaginatedQuery,
  useQuery,
  type UseAuth,
} from "@ripplehq/client";
import { api } from "./generated/api";
import type { Conversation, Participant, SearchHit } from "./generated/api";

type Id = string;
type Auth = UseAuth;

export function App() {
  const auth = useAuth();
  // A stored session shows the chat at once; its queries wait for the server to accept it.
  if (!auth.session) return <AuthScreen auth={auth} />;
  return (
    <ErrorBoundary fallback={(err) => <FatalError message={errorMessage(err)} auth={auth} />}>
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

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      if (signup) await auth.signUp({ email: email.trim(), password, name: name.trim() });
      else await auth.signIn({ email: email.trim(), password });
    } catch (err) {
      const retryAfterMs = err instanceof RippleError ? Number(err.data.retryAfterMs) : 0;
      if (retryAfterMs > 0) {
        setError(`${errorMessage(err)} Try again in ${Math.ceil(retryAfterMs / 1000)} s.`);
      } else {
        setError(errorMessage(err));
      }
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

function Chat({ auth }: { auth: Auth }) {
  const me = useQuery(api.users.me, {});
  const [selected, setSelected] = useState<Id | null>(null);

  if (me === undefined) return <p className="loading">Loading…</p>;
  if (me === null) return <FatalError message="Your session has ended." auth={auth} />;

  return (
    <div className="chat">
      <header className="topbar">
        <span className="brand">Ripple Chat</span>
        <span className="whoami">
          Signed in as <strong>{me.name}</strong>
        </span>
        <button type="button" onClick={() => void auth.signOut()}>
          Sign out
        </button>
      </header>
      <aside className="sidebar" aria-label="Conversations">
        <StartChat onStarted={setSelected} />
        <ConversationList me={me} selected={selected} onSelect={setSelected} />
      </aside>
      <main className="thread-pane">
        {selected ? (
          <ErrorBoundary key={selected} fallback={(err) => <p className="error" role="alert">{errorMessage(err)}</p>}>
            <Thread conversationId={selected} me={me} />
          </ErrorBoundary>
        ) : (
          <p className="empty">Pick a conversation, or start one by email.</p>
        )}
      </main>
    </div>
  );
}

function StartChat({ onStarted }: { onStarted: (id: Id) => void }) {
  const start = useMutation(api.conversations.getOrCreateDirect);
  const [email, setEmail] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      onStarted(await start({ email: email.trim() }));
      setEmail("");
    } catch (err) {
      setError(errorMessage(err));
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
        <button type="submit" disabled={busy || !email.trim()}>
          Start
        </button>
      </div>
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

function ConversationList({
  me,
  selected,
  onSelect,
}: {
  me: Participant;
  selected: Id | null;
  onSelect: (id: Id) => void;
}) {
  const conversations = useQuery(api.conversations.list, {});
  if (conversations === undefined) return <p className="loading">Loading conversations…</p>;
  if (conversations.length === 0) return <p className="empty">No conversations yet.</p>;
  return (
    <ul className="conversations">
      {conversations.map((c) => {
        const other = otherParticipant(c, me);
        const preview = c.lastMessage
          ? `${c.lastMessage.senderId === me._id ? "You: " : ""}${c.lastMessage.body}`
          : "No messages yet";
        return (
          <li key={c._id}>
            <button
              type="button"
              className="conversation"
              aria-current={c._id === selected ? "true" : undefined}
              data-testid="conversation"
              onClick={() => onSelect(c._id)}
            >
              <span className="name">{other?.name ?? "Unknown"}</span>
              <span className="preview">{preview}</span>
              {c.lastMessageTime != null && <time className="time">{formatTime(c.lastMessageTime)}</time>}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function Thread({ conversationId, me }: { conversationId: Id; me: Participant }) {
  const conversations = useQuery(api.conversations.list, {});
  const conversation = conversations?.find((c) => c._id === conversationId);
  const other = conversation ? otherParticipant(conversation, me) : undefined;
  const { results, status, loadMore } = usePaginatedQuery(
    api.messages.list,
    { conversationId },
    { initialNumItems: 30 },
  );
  const messages = [...results].reverse();
  const bottom = useRef<HTMLDivElement>(null);
  const newest = results[0]?._id;

  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [newest]);

  return (
    <section className="thread" aria-label={other ? `Conversation with ${other.name}` : "Conversation"}>
      <header className="thread-header">
        <h2>{other?.name ?? "Conversation"}</h2>
        {other && <span className="muted">{other.email}</span>}
      </header>
      <Search conversationId={conversationId} me={me} otherName={other?.name ?? "Them"} />
      <div className="messages" aria-live="polite">
        {status === "CanLoadMore" && (
          <button type="button" className="link older" onClick={() => loadMore(30)}>
            Load older messages
          </button>
        )}
        {status === "LoadingFirstPage" && <p className="loading">Loading messages…</p>}
        {status !== "LoadingFirstPage" && messages.length === 0 && <p className="empty">No messages yet. Say hello!</p>}
        <ol>
          {messages.map((m) => {
            const mine = m.senderId === me._id;
            return (
              <li key={m._id} className={mine ? "message mine" : "message theirs"} data-testid="message">
                <span className="sr-only">{mine ? "You" : other?.name ?? "They"}: </span>
                <span className="body">{m.body}</span>
                <time className="time">{formatTime(m._creationTime)}</time>
              </li>
            );
          })}
        </ol>
        <div ref={bottom} />
      </div>
      <SendBox conversationId={conversationId} />
    </section>
  );
}

function SendBox({ conversationId }: { conversationId: Id }) {
  const send = useMutation(api.messages.send);
  const [body, setBody] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);
  const empty = body.trim() === "";

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    if (empty || busy) return;
    setError(null);
    setBusy(true);
    try {
      await send({ conversationId, body: body.trim() });
      setBody("");
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
      input.current?.focus();
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    }
  }

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
        maxLength={4000}
        onChange={(e) => setBody(e.target.value)}
        onKeyDown={onKeyDown}
        autoFocus
      />
      <button type="submit" className="primary" disabled={empty || busy}>
        Send
      </button>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function Search({ conversationId, me, otherName }: { conversationId: Id; me: Participant; otherName: string }) {
  const search = useAction(api.messages.search);
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!query.trim()) return;
    setError(null);
    setBusy(true);
    try {
      setHits(await search({ conversationId, query: query.trim(), limit: 10 }));
    } catch (err) {
      setError(errorMessage(err));
      setHits(null);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="search">
      <form role="search" onSubmit={submit} className="row">
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
        <button type="submit" disabled={busy || !query.trim()}>
          {busy ? "Searching…" : "Search"}
        </button>
        {hits && (
          <button type="button" className="link" onClick={() => setHits(null)}>
            Clear
          </button>
        )}
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {hits && (
        <section aria-label="Search results" className="hits">
          {hits.length === 0 ? (
            <p className="empty">No matches.</p>
          ) : (
            <ol>
              {hits.map((h) => (
                <li key={h._id} data-testid="search-hit">
                  <span className="who">{h.senderId === me._id ? "You" : otherName}</span>
                  <span className="body">{h.body}</span>
                  <time className="time">{formatTime(h._creationTime)}</time>
                </li>
              ))}
            </ol>
          )}
        </section>
      )}
    </div>
  );
}

// ---------- helpers ----------

function formatTime(ms: number): string {
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
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

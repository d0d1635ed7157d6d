// The chat app: sign in, then the conversation list and one conversation at a time (router.ts
// has the URLs). Each part is its own module: conversations, thread, messages, composer, search.
import { Component } from "react";
import type { ReactNode } from "react";
import { useAuth, useQuery, type UseAuth } from "@ripplehq/client";
import { api } from "./generated/api";
import { AuthScreen } from "./auth-screen";
import { ConnectionBanner } from "./connection";
import { StartChat, NewGroup, ConversationList, BackLink } from "./conversations";
import { describeError } from "./errors";
import { parseRoute, useLocation } from "./router";
import { usePendingSends, Thread } from "./thread";
import { useUnreadTitle, useNotifications } from "./unread";

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

function Chat({ auth }: { auth: UseAuth }) {
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
        <NewGroup />
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

function FatalError({ message, auth }: { message: string; auth: UseAuth }) {
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

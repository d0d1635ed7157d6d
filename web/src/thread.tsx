// One conversation: its header (name, email, block), search, messages and composer, and the
// sends the server has not confirmed yet.
import { useCallback, useRef, useState } from "react";
import { useMutation } from "@ripplehq/client";
import { api, type Conversation, type Participant, type User } from "./generated/api";
import { Composer } from "./composer";
import { useOnline, OFFLINE_REASON } from "./connection";
import { otherParticipant, BackLink, isGroup, memberCount } from "./conversations";
import { GroupMembers } from "./group";
import { describeError } from "./errors";
import { MessageList } from "./messages";
import type { Id } from "./router";
import { Search } from "./search";

export type Pending = { key: number; conversationId: Id; body: string; status: "sending" | "failed"; error?: string };

export type PendingSends = {
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
export function usePendingSends(): PendingSends {
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

export function Thread({
  conversationId,
  conversation,
  me,
  jumpTo,
  initialQuery,
  sends,
}: {
  conversationId: Id;
  conversation: Conversation | undefined;
  me: User;
  jumpTo: string | null;
  initialQuery: string | null;
  sends: PendingSends;
}) {
  const group = isGroup(conversation);
  const other = conversation && !group ? otherParticipant(conversation, me) : undefined;
  // In a group a block does not stop sending (the blocked member's messages are folded away).
  const blocked = !!other && !!conversation?.blockedByMe.includes(other._id);
  const [showMembers, setShowMembers] = useState(false);
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
          <h2 id="thread-title">{group ? conversation?.name : (other?.name ?? "Conversation")}</h2>
          {other && <span className="email">{other.email}</span>}
          {group && conversation && <span className="email">{memberCount(conversation)}</span>}
        </div>
        {other && <BlockControl other={other} blocked={blocked} />}
        {group && (
          <button type="button" aria-expanded={showMembers} aria-controls="members-panel" onClick={() => setShowMembers((v) => !v)}>
            Members
          </button>
        )}
      </header>
      {group && conversation && showMembers && (
        <div id="members-panel">
          <GroupMembers conversation={conversation} me={me} />
        </div>
      )}
      <Search conversationId={conversationId} me={me} otherName={group ? "A member" : (other?.name ?? "Them")} initialQuery={initialQuery} />
      <MessageList
        conversationId={conversationId}
        conversation={conversation}
        me={me}
        otherName={group ? (conversation?.name ?? "the group") : (other?.name ?? "They")}
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

export function BlockControl({ other, blocked }: { other: Participant; blocked: boolean }) {
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

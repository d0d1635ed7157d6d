// A group's members panel: the member list (admins marked), adding people by email, removing
// (admins), leaving, and renaming the group (admins).
import { useId, useState } from "react";
import type { FormEvent } from "react";
import { useMutation } from "@ripplehq/client";
import { api, type Conversation, type User } from "./generated/api";
import { useOnline, OFFLINE_REASON } from "./connection";
import { RefusedList, splitEmails } from "./conversations";
import { describeError, refusedMembers, MAX_GROUP_NAME_LENGTH } from "./errors";
import { navigate } from "./router";

export function GroupMembers({ conversation, me }: { conversation: Conversation; me: User }) {
  const remove = useMutation(api.conversations.removeMember);
  const online = useOnline();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirmLeave, setConfirmLeave] = useState(false);
  const amAdmin = conversation.participants.some((p) => p._id === me._id && p.admin);
  const offlineNote = !online ? { "aria-describedby": "members-offline" } : {};

  async function removeMember(userId: string) {
    setBusy(true);
    setError(null);
    try {
      await remove({ conversationId: conversation._id, userId });
      if (userId === me._id) navigate("/");
    } catch (err) {
      setError(describeError(err, "group"));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="members" aria-labelledby="members-title" data-testid="members-panel">
      <h3 id="members-title">Members ({conversation.participants.length})</h3>
      <ul>
        {conversation.participants.map((p) => (
          <li key={p._id} data-testid="member">
            <span className="name">
              {p._id === me._id ? `${p.name} (you)` : p.name} <span className="email">{p.email}</span>
              {p.admin && <span className="tag">admin</span>}
            </span>
            {amAdmin && p._id !== me._id && (
              <button
                type="button"
                disabled={busy || !online}
                onClick={() => void removeMember(p._id)}
                aria-label={`Remove ${p.name} from the group`}
                {...offlineNote}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {amAdmin && <AddMembers conversationId={conversation._id} />}
      {amAdmin && <RenameGroup conversation={conversation} />}
      {confirmLeave ? (
        <div className="confirm" role="group" aria-label="Leave the group?">
          <span>Leave “{conversation.name}”? You won't see its messages any more unless someone adds you again.</span>
          <button type="button" className="danger" disabled={busy || !online} onClick={() => void removeMember(me._id)} {...offlineNote}>
            Leave
          </button>
          <button type="button" onClick={() => setConfirmLeave(false)}>
            Cancel
          </button>
        </div>
      ) : (
        <button type="button" disabled={!online} onClick={() => setConfirmLeave(true)} {...offlineNote}>
          Leave group…
        </button>
      )}
      {!online && (
        <span id="members-offline" className="sr-only">
          {OFFLINE_REASON}
        </span>
      )}
    </section>
  );
}

function AddMembers({ conversationId }: { conversationId: string }) {
  const add = useMutation(api.conversations.addMembers);
  const online = useOnline();
  const [emails, setEmails] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [refused, setRefused] = useState<{ email: string; reason: string }[]>([]);
  const [busy, setBusy] = useState(false);
  const ids = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!online || busy) return;
    setBusy(true);
    setError(null);
    setRefused([]);
    try {
      await add({ conversationId, emails: splitEmails(emails) });
      setEmails("");
    } catch (err) {
      setError(describeError(err, "group"));
      setRefused(refusedMembers(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="add-members" onSubmit={submit}>
      <label htmlFor={`${ids}-emails`}>Add people by email</label>
      <div className="row">
        <input
          id={`${ids}-emails`}
          value={emails}
          onChange={(e) => setEmails(e.target.value)}
          placeholder="name@school.edu"
          aria-describedby={refused.length ? `${ids}-refused` : undefined}
          aria-invalid={refused.length > 0 || undefined}
          required
        />
        <button type="submit" disabled={busy || !online || !emails.trim()}>
          Add
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <RefusedList id={`${ids}-refused`} refused={refused} />
    </form>
  );
}

function RenameGroup({ conversation }: { conversation: Conversation }) {
  const rename = useMutation(api.conversations.rename);
  const online = useOnline();
  const [name, setName] = useState(conversation.name ?? "");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ids = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!online || busy) return;
    setBusy(true);
    setError(null);
    try {
      await rename({ conversationId: conversation._id, name: name.trim() });
    } catch (err) {
      setError(describeError(err, "group"));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="rename" onSubmit={submit}>
      <label htmlFor={`${ids}-name`}>Group name</label>
      <div className="row">
        <input id={`${ids}-name`} value={name} maxLength={MAX_GROUP_NAME_LENGTH} onChange={(e) => setName(e.target.value)} required />
        <button type="submit" disabled={busy || !online || !name.trim() || name.trim() === conversation.name}>
          Rename
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

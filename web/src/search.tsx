// Search in a conversation: results with the matched words marked, each a link to the message.
// The results are live (messages:searchLive): a matching message sent while the search is open
// shows up in it, an edited one changes, a deleted one goes.
import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { useAction, useQueryState } from "@ripplehq/client";
import { api, type Participant } from "./generated/api";
import { useOnline, OFFLINE_REASON } from "./connection";
import { followLink } from "./conversations";
import { describeError, type ErrorContext } from "./errors";
import { formatTime } from "./format";
import { conversationPath, navigate, type Id } from "./router";
import { Highlighted, queryWords } from "./text";

const SEARCH_LIMIT = 10;

export function Search({
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
  const prepare = useAction(api.messages.prepareSearch);
  const online = useOnline();
  const [query, setQuery] = useState(initialQuery ?? "");
  // The search on screen: a live query, so its results follow new, edited and deleted messages
  // while it is open.
  const [searched, setSearched] = useState(initialQuery?.trim() ?? "");
  const live = useQueryState(
    api.messages.searchLive,
    searched ? { conversationId, query: searched, limit: SEARCH_LIMIT } : "skip",
  );
  // Matches by meaning need the query's vector, made once per text by prepareSearch; until then
  // the results are word matches (semantic "pending"). Asked again only when the result turns
  // pending again (the stored vector was evicted).
  const [meaningError, setMeaningError] = useState<string | null>(null);
  const asked = useRef<string | null>(null);
  const pending = live.status === "success" && live.data.semantic === "pending";
  const key = `${conversationId}\u0000${searched}`;
  useEffect(() => {
    if (!pending) {
      if (live.status === "success") asked.current = null;
      return;
    }
    if (!online || asked.current === key) return;
    asked.current = key;
    setMeaningError(null);
    prepare({ conversationId, query: searched }).catch((err: unknown) =>
      setMeaningError(describeError(err, "search" satisfies ErrorContext)),
    );
  }, [pending, online, key, conversationId, searched, prepare, live.status]);

  function submit(e: FormEvent) {
    e.preventDefault();
    const q = query.trim();
    if (!q || !online) return;
    setMeaningError(null);
    setSearched(q);
    navigate(conversationPath(conversationId, { q }), { replace: true });
  }

  const hits = live.status === "success" ? live.data.hits : null;
  const busy = live.status === "loading" && !!searched;
  const error = live.status === "error" ? describeError(live.error, "search" satisfies ErrorContext) : null;
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
        {searched && (
          <button
            type="button"
            className="link"
            onClick={() => {
              setSearched("");
              setMeaningError(null);
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
        <section aria-label="Search results" className="hits" data-semantic={live.status === "success" ? live.data.semantic : undefined}>
          {pending && (hits.length > 0 || meaningError) && (
            <p className="hint" data-testid="search-words-only">
              {meaningError
                ? `Showing messages with these words only. ${meaningError}`
                : "Showing messages with these words; matches by meaning are on their way."}
            </p>
          )}
          {hits.length === 0 && pending && !meaningError ? (
            <p className="empty">Searching by meaning…</p>
          ) : hits.length === 0 ? (
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

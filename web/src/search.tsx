// Search in a conversation: results with the matched words marked, each a link to the message.
import { useCallback, useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { useAction } from "@ripplehq/client";
import { api, type Participant, type SearchHit } from "./generated/api";
import { useOnline, OFFLINE_REASON } from "./connection";
import { followLink } from "./conversations";
import { describeError, type ErrorContext } from "./errors";
import { formatTime } from "./format";
import { conversationPath, navigate, type Id } from "./router";
import { Highlighted, queryWords } from "./text";

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

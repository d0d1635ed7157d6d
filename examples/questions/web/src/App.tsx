import { useState, type FormEvent } from "react";
import {
  Authenticated,
  Unauthenticated,
  AuthLoading,
  errorMessage,
  useAuth,
  useMutation,
  usePaginatedQuery,
  useQuery,
  type OptimisticLocalStore,
} from "@ripplehq/client";
import { api, type Question } from "./generated/api";

export function App() {
  return (
    <main style={{ maxWidth: 640, margin: "2rem auto", fontFamily: "system-ui, sans-serif" }}>
      <h1>Question board</h1>
      <AuthLoading>Loading…</AuthLoading>
      <Unauthenticated>
        <SignUp />
      </Unauthenticated>
      <Authenticated>
        <Board />
      </Authenticated>
    </main>
  );
}

function SignUp() {
  const { signUp, signIn } = useAuth();
  const [error, setError] = useState("");
  const submit = (mode: "up" | "in") => async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const email = String(f.get("email")), password = String(f.get("password"));
    try {
      if (mode === "up") await signUp({ email, password, name: String(f.get("name")) });
      else await signIn({ email, password });
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  return (
    <form onSubmit={submit("up")} aria-label="Sign up">
      <input name="name" placeholder="Name" required />
      <input name="email" type="email" placeholder="Email" required />
      <input name="password" type="password" placeholder="Password" required minLength={8} />
      <button type="submit">Sign up</button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

/** Raises a question's votes in every loaded page of the board, before the server answers. */
function optimisticUpvote(store: OptimisticLocalStore, { questionId }: { questionId: string }) {
  for (const { args, value } of store.getAllQueries(api.questions.list)) {
    if (!value) continue;
    const page = value.page.map((q) => (q._id === questionId && !q.voted ? { ...q, votes: q.votes + 1, voted: true } : q));
    store.setQuery(api.questions.list, args, { ...value, page });
  }
}

function Board() {
  const me = useQuery(api.users.me, {});
  const openCount = useQuery(api.questions.openCount, {});
  const { signOut } = useAuth();
  const { results, status, loadMore } = usePaginatedQuery(api.questions.list, {}, { initialNumItems: 10 });
  const ask = useMutation(api.questions.ask);
  const upvote = useMutation(api.questions.upvote).withOptimisticUpdate(optimisticUpvote);
  const markAnswered = useMutation(api.questions.markAnswered);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState("");
  const run = (p: Promise<unknown>) => p.then(() => setError(""), (err) => setError(errorMessage(err)));

  return (
    <section>
      <p>
        Signed in as {me?.name}
        {me?.isTeacher && " (teacher)"} <button onClick={() => void signOut()}>Sign out</button>
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(ask({ body: draft }).then(() => setDraft("")));
        }}
      >
        <input aria-label="Your question" value={draft} onChange={(e) => setDraft(e.target.value)} maxLength={500} />
        <button type="submit" disabled={!draft.trim()}>
          Ask
        </button>
      </form>
      {error && <p role="alert">{error}</p>}
      <p>Open questions: {openCount ?? "…"}</p>
      <ol aria-label="Questions">
        {results.map((q: Question) => (
          <li key={q._id} data-answered={q.answered}>
            <span className="votes">{q.votes}</span> <span className="body">{q.body}</span>
            {q.answered && " ✓ answered"}
            {!q.answered && (
              <button disabled={q.voted} onClick={() => void run(upvote({ questionId: q._id }))}>
                Upvote
              </button>
            )}
            {me?.isTeacher && !q.answered && (
              <button onClick={() => void run(markAnswered({ questionId: q._id }))}>Mark answered</button>
            )}
          </li>
        ))}
      </ol>
      {status === "CanLoadMore" && <button onClick={() => loadMore(10)}>More questions</button>}
    </section>
  );
}

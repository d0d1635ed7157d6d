// The type test (`npm run typecheck`, part of `npm test`): the generated api (web/src/generated/
// api.ts) makes the hooks and RippleClient check arguments and results at compile time. Every
// line marked with an expect-error directive must stay an error: tsc fails if it compiles.
// Never run.
import { RippleClient, useAction, useMutation, usePaginatedQuery, useQuery } from "../src/index.js";
import { api, type Conversation, type Message } from "../../web/src/generated/api.js";

declare const client: RippleClient;

export async function clientCalls() {
  const id: string = await client.mutation(api.messages.send, { conversationId: "1", body: "hi" });
  // @ts-expect-error body is a string
  await client.mutation(api.messages.send, { conversationId: "1", body: 42 });
  // @ts-expect-error body is required
  await client.mutation(api.messages.send, { conversationId: "1" });
  // @ts-expect-error no such argument
  await client.mutation(api.messages.send, { conversationId: "1", body: "hi", extra: true });
  // @ts-expect-error a query is not a mutation
  await client.mutation(api.conversations.list, {});
  const list: Conversation[] = await client.query(api.conversations.list, {});
  // @ts-expect-error the result is a list of conversations, not a number
  const wrong: number = await client.query(api.conversations.list, {});
  client.subscribe(api.conversations.list, {}, (cs) => cs.map((c) => c.participants[0]?.email.toUpperCase()));
  return [id, list, wrong];
}

export function Hooks() {
  const conversations = useQuery(api.conversations.list);
  const first: Conversation | undefined = conversations?.[0];
  // @ts-expect-error conversationId is a string
  useQuery(api.messages.list, { conversationId: 1, paginationOpts: { numItems: 1, cursor: null } });
  const me = useQuery(api.users.me, {});
  const state = useQuery(api.users.me, {}, { throwOnError: false });
  const loaded: string | undefined = state.status === "success" ? state.data?.email : state.error?.code;
  // @ts-expect-error me is undefined while loading and null when signed out
  const name: string = me.name;
  const send = useMutation(api.messages.send);
  // @ts-expect-error body is missing
  void send({ conversationId: "1" });
  const search = useAction(api.messages.search);
  void search({ conversationId: "1", query: "hi", limit: 3 });
  // @ts-expect-error limit is a number
  void search({ conversationId: "1", query: "hi", limit: "3" });
  const page = usePaginatedQuery(api.messages.list, { conversationId: "1" }, { initialNumItems: 10 });
  const m: Message | undefined = page.results[0];
  // @ts-expect-error paginationOpts is the hook's to add
  usePaginatedQuery(api.messages.list, { conversationId: "1", paginationOpts: { numItems: 1, cursor: null } }, { initialNumItems: 10 });
  return [first, m, name, loaded];
}

// The README's example, as written there.
export function Thread({ conversationId }: { conversationId: string }) {
  const { results } = usePaginatedQuery(api.messages.list, { conversationId }, { initialNumItems: 20 });
  const send = useMutation(api.messages.send);
  return <>{results.map((m) => <p key={m._id}>{m.body}</p>)}<button onClick={() => send({ conversationId, body: "hi" })}>Send</button></>;
}

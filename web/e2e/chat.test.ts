// The chat end to end in a real browser (harness.ts): real `ripple serve`, real Postgres, Debian's
// Chromium, two or three real users per test in their own browser contexts.
import type { Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  axeViolations,
  baseUrl,
  DESKTOP,
  dumpServerLog,
  email,
  newPage,
  PHONE,
  psql,
  sendMessage,
  shot,
  signUp,
  startAll,
  startChat,
  startServer,
  stopAll,
  stopServer,
  until,
} from "./harness";

beforeAll(startAll);
afterAll(stopAll);

/** Runs a test body; on failure saves each page's screenshot and the server's log. */
async function scenario(name: string, pages: () => Page[], body: () => Promise<void>) {
  try {
    await body();
  } catch (err) {
    for (const [i, p] of pages().entries()) await shot(p, `failure-${name}-${i}`).catch(() => {});
    dumpServerLog();
    throw err;
  }
}

const badge = (page: Page, name: string) =>
  page.getByTestId("conversation").filter({ hasText: name }).getByTestId("unread-badge");

// Stubs the Notification API (to record what the app shows) and lets the test hide the tab.
const notificationStub = () => {
  const w = window as unknown as Record<string, unknown>;
  w.__notifications = [];
  w.__hidden = false;
  class FakeNotification {
    static permission = "granted";
    static requestPermission = async () => "granted";
    onclick: (() => void) | null = null;
    constructor(title: string, options?: { body?: string }) {
      (w.__notifications as unknown[]).push({ title, body: options?.body });
    }
  }
  w.Notification = FakeNotification;
  Object.defineProperty(document, "visibilityState", { get: () => (w.__hidden ? "hidden" : "visible") });
  Object.defineProperty(document, "hidden", { get: () => !!w.__hidden });
  w.__setHidden = (h: boolean) => {
    w.__hidden = h;
    document.dispatchEvent(new Event("visibilitychange"));
  };
};

test("unread: badge per conversation, total in the title, notification when hidden, cleared on reading", async () => {
  const ann = await newPage();
  const bob = await newPage();
  await bob.context().addInitScript(notificationStub);
  const cat = await newPage();
  await scenario("unread", () => [ann, bob, cat], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    await signUp(cat, "Cat Cole", email("cat"));

    await startChat(ann, bobEmail, "Bob Baker");
    await startChat(cat, bobEmail, "Bob Baker");
    // Bob switches notifications on and leaves the tab in the background.
    await bob.getByRole("button", { name: "Notify me" }).click();
    await bob.getByRole("button", { name: "Notifications on" }).waitFor();
    await bob.evaluate(() => (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(true));

    await sendMessage(ann, "are you coming to the lab?");
    await sendMessage(ann, "it starts at 3");
    await sendMessage(cat, "homework question");

    await badge(bob, "Ann Archer").filter({ hasText: "2" }).waitFor();
    await badge(bob, "Cat Cole").filter({ hasText: "1" }).waitFor();
    await until("the tab title to count 3", async () => (await bob.title()) === "(3) Ripple Chat");
    await expect(badge(bob, "Ann Archer").innerText()).resolves.toContain("2");
    await until("notifications for the new messages", async () =>
      (await bob.evaluate(() => (window as unknown as { __notifications: { title: string }[] }).__notifications)).some(
        (n) => n.title === "New message from Cat Cole",
      ),
    );
    const shown = await bob.evaluate(() => (window as unknown as { __notifications: { title: string; body: string }[] }).__notifications);
    expect(shown.map((n) => n.title)).toContain("New message from Ann Archer");
    // Ann's own side counts nothing.
    expect(await ann.getByTestId("unread-badge").count()).toBe(0);

    // Bob comes back and opens Ann's conversation: it is read, on the server.
    await bob.evaluate(() => (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(false));
    await bob.getByTestId("conversation").filter({ hasText: "Ann Archer" }).click();
    await bob.getByTestId("message").filter({ hasText: "it starts at 3" }).waitFor();
    await badge(bob, "Ann Archer").waitFor({ state: "detached" });
    await until("the title to count 1", async () => (await bob.title()) === "(1) Ripple Chat");
    await bob.reload();
    await bob.getByTestId("conversation").filter({ hasText: "Cat Cole" }).waitFor();
    expect(await badge(bob, "Ann Archer").count()).toBe(0);
    await badge(bob, "Cat Cole").filter({ hasText: "1" }).waitFor();
    const row = psql(
      `SELECT count(*) FROM conversation_read_states r JOIN users u ON u.id = r.user_id WHERE u.email = '${bobEmail}'`,
    );
    expect(row).toBe("1");

    // While Bob has Ann's conversation open and visible, her new message is read at once.
    await sendMessage(ann, "see you there");
    await bob.getByTestId("message").filter({ hasText: "see you there" }).waitFor();
    await until("the title to come back to 1 (read at once)", async () => (await bob.title()) === "(1) Ripple Chat");
    expect(await badge(bob, "Ann Archer").count()).toBe(0);
  });
});

test("routes: a URL per conversation, reload and Back, one pane at a time on phones, 200% zoom", async () => {
  const ann = await newPage(PHONE);
  const bob = await newPage();
  await scenario("routes", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const id = await startChat(bob, annEmail, "Ann Archer");
    await sendMessage(bob, "hello from bob");
    expect(new URL(bob.url()).pathname).toBe(`/c/${id}`);

    // Reload keeps the conversation (the server serves the app for /c/:id).
    await bob.reload();
    await bob.getByRole("heading", { name: "Ann Archer", level: 2 }).waitFor();
    await bob.getByTestId("message").filter({ hasText: "hello from bob" }).waitFor();
    // Back goes to the list, still in the app; Forward returns.
    await bob.goBack();
    await until("the list route", () => new URL(bob.url()).pathname === "/");
    await bob.getByText("Pick a conversation, or start one by email.").waitFor();
    await bob.goForward();
    await bob.getByRole("heading", { name: "Ann Archer", level: 2 }).waitFor();
    // A conversation one is not part of says so in words.
    await bob.goto("/c/999999999");
    await bob.getByText("You can't open this conversation.", { exact: false }).waitFor();

    // Phone: the list alone; a conversation alone, with a way back; the thread takes the height.
    await ann.getByTestId("conversation").filter({ hasText: "Bob Baker" }).waitFor();
    expect(await ann.locator(".thread-pane").isVisible()).toBe(false);
    await shot(ann, "phone-list");
    await ann.getByTestId("conversation").filter({ hasText: "Bob Baker" }).click();
    await ann.getByTestId("message").filter({ hasText: "hello from bob" }).waitFor();
    expect(await ann.locator(".sidebar").isVisible()).toBe(false);
    const messagesBox = (await ann.locator(".messages").boundingBox())!;
    expect(messagesBox.height).toBeGreaterThan(PHONE.height * 0.5);
    await expectNoHorizontalScroll(ann);
    expect(await axeViolations(ann), "phone thread").toEqual([]);
    await shot(ann, "phone-thread");
    await ann.getByRole("link", { name: "Conversations" }).click();
    await ann.getByTestId("conversation").filter({ hasText: "Bob Baker" }).waitFor();
    expect(new URL(ann.url()).pathname).toBe("/");

    // 200% zoom at 1280×800 is a 640×400 CSS viewport at twice the pixel density.
    const zoomed = await newPage({ width: 640, height: 400 }, { deviceScaleFactor: 2 });
    await signUp(zoomed, "Zed Zoom", email("zed"));
    await startChat(zoomed, bobEmail, "Bob Baker");
    await sendMessage(zoomed, "zoomed in");
    const box = (await zoomed.locator(".messages").boundingBox())!;
    expect(box.height).toBeGreaterThan(120);
    await expectNoHorizontalScroll(zoomed);
    expect(await axeViolations(zoomed), "200% zoom").toEqual([]);
    await shot(zoomed, "zoom-200-thread");
  });
});

test("errors are sentences, never server text", async () => {
  const ann = await newPage();
  const bob = await newPage();
  await scenario("errors", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const start = async (address: string) => {
      await ann.getByLabel("Start a chat by email").fill(address);
      await ann.getByRole("button", { name: "Start", exact: true }).click();
      const alert = ann.locator(".start [role=alert]");
      await alert.waitFor();
      return alert.innerText();
    };
    expect(await start("nobody-here@example.com")).toBe(
      "No one with that email has an account here. Check the spelling, or ask them to sign up first.",
    );
    expect(await start(annEmail)).toBe("That's your own email. Enter the email of the person you want to talk to.");
    const text = await ann.locator("body").innerText();
    expect(text).not.toMatch(/CONVEX|argument|Called by client|INVALID_ARGUMENT|NOT_FOUND/);
    // A typo in Bob's address, then the right one: the error goes, the chat opens.
    expect(await start(bobEmail.replace("@", "x@"))).toMatch(/^No one with that email has an account here\./);
    await startChat(ann, bobEmail, "Bob Baker");
    expect(await ann.locator(".start [role=alert]").count()).toBe(0);
    // A conversation that is not Bob's (the server says the same for one that does not exist).
    await bob.goto("/c/999999998");
    await bob.getByText("You can't open this conversation. It may not exist, or you're not part of it.").waitFor();

    // Sign-in with a wrong password, in words.
    const other = await newPage();
    await other.goto("/");
    await other.getByLabel("Email").fill(annEmail);
    await other.getByLabel("Password").fill("not the password");
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.getByText("That email and password don't match an account. Check them and try again.").waitFor();
  });
});

test("outage: a status banner, actions disabled with a reason, a pending message delivered exactly once", async () => {
  const ann = await newPage();
  const bob = await newPage();
  await scenario("outage", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const id = await startChat(ann, bobEmail, "Bob Baker");
    await sendMessage(ann, "before the outage");
    await bob.getByTestId("conversation").filter({ hasText: "Ann Archer" }).click();
    await bob.getByTestId("message").filter({ hasText: "before the outage" }).waitFor();

    // Everything the status banner says from here on, however briefly.
    await ann.evaluate(() => {
      const w = window as unknown as { __banner: string[] };
      w.__banner = [];
      const el = document.querySelector("[data-testid=connection-banner]")!;
      new MutationObserver(() => w.__banner.push(el.textContent ?? "")).observe(el, { childList: true, characterData: true, subtree: true });
    });
    await stopServer();
    const banner = ann.getByRole("status").filter({ hasText: /Reconnecting|offline/ });
    await banner.waitFor();
    // Start, Search and Block need the server: disabled, saying why.
    await ann.getByLabel("Start a chat by email").fill("someone@example.com");
    expect(await ann.getByRole("button", { name: "Start", exact: true }).isDisabled()).toBe(true);
    await ann.getByText("You're offline. This needs a connection.").first().waitFor();
    await ann.getByLabel("Search messages").fill("outage");
    expect(await ann.getByRole("button", { name: "Search", exact: true }).isDisabled()).toBe(true);
    expect(await axeViolations(ann), "offline").toEqual([]);
    await shot(ann, "desktop-offline");

    // A message sent now shows at once as sending.
    const box = ann.getByLabel("Message", { exact: true });
    await box.fill("sent during the outage");
    await box.press("Enter");
    await ann.locator('[data-testid="message"][data-status="sending"]').filter({ hasText: "sent during the outage" }).waitFor();
    expect(await box.inputValue()).toBe("");
    expect(await axeViolations(ann), "a message sending").toEqual([]);
    // Looking elsewhere and coming back, it is still there, still sending.
    await ann.goBack();
    await ann.getByText("Pick a conversation, or start one by email.").waitFor();
    await ann.goForward();
    await ann.locator('[data-testid="message"][data-status="sending"]').filter({ hasText: "sent during the outage" }).waitFor();

    await startServer();
    await ann.locator('[data-testid="message"][data-status="sent"]').filter({ hasText: "sent during the outage" }).waitFor({ timeout: 60_000 });
    // It said so when the connection came back (the line stays a few seconds, then goes).
    await until("the banner to say the connection is back", async () =>
      (await ann.evaluate(() => (window as unknown as { __banner: string[] }).__banner)).includes("Connected again."),
    );
    await bob.getByTestId("message").filter({ hasText: "sent during the outage" }).waitFor({ timeout: 60_000 });
    expect(await bob.getByTestId("message").filter({ hasText: "sent during the outage" }).count()).toBe(1);
    expect(await ann.getByTestId("message").filter({ hasText: "sent during the outage" }).count()).toBe(1);
    expect(psql(`SELECT count(*) FROM messages WHERE conversation_id = ${id} AND body = 'sent during the outage'`)).toBe("1");
    expect(await ann.getByRole("button", { name: "Start", exact: true }).isDisabled()).toBe(false);
  });
});

test("composer: counter near the limit, an over-long paste warns and keeps the text, links, long words wrap", async () => {
  const ann = await newPage();
  const bob = await newPage();
  await scenario("composer", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    await startChat(ann, bobEmail, "Bob Baker");
    const box = ann.getByLabel("Message", { exact: true });
    const send = ann.getByRole("button", { name: "Send" });

    expect(await ann.getByTestId("counter").count()).toBe(0);
    await box.fill("a".repeat(3_900));
    await ann.getByTestId("counter").filter({ hasText: "100 characters left" }).waitFor();

    // Paste 200 more: a warning, nothing cut, Send disabled and the counter says by how much.
    await box.focus();
    await ann.evaluate(() => {
      const t = document.getElementById("message-body") as HTMLTextAreaElement;
      t.setSelectionRange(t.value.length, t.value.length);
    });
    await ann.context().grantPermissions(["clipboard-read", "clipboard-write"]);
    await ann.evaluate(() => navigator.clipboard.writeText("b".repeat(200)));
    await box.press("Control+V");
    await ann.getByRole("alert").filter({ hasText: "That paste makes the message 4,100 characters" }).waitFor();
    expect((await box.inputValue()).length).toBe(4_100);
    await ann.getByTestId("counter").filter({ hasText: "100 characters over the 4,000 limit" }).waitFor();
    expect(await send.isDisabled()).toBe(true);
    await box.fill("");

    // Links are links, opening safely; a long unbroken string wraps.
    await sendMessage(ann, "notes at https://example.org/notes?week=3. thanks");
    const link = ann.getByTestId("message").getByRole("link", { name: "https://example.org/notes?week=3" });
    await expect(link.getAttribute("rel")).resolves.toBe("noopener noreferrer");
    await expect(link.getAttribute("target")).resolves.toBe("_blank");
    await bob.getByTestId("conversation").filter({ hasText: "Ann Archer" }).click();
    await bob.getByTestId("message").getByRole("link", { name: "https://example.org/notes?week=3" }).waitFor();
    const long = "x".repeat(600) + " https://example.org/" + "y".repeat(300);
    await sendMessage(ann, long);
    await expectNoHorizontalScroll(ann);
    await bob.getByTestId("message").filter({ hasText: "xxxxxxxx" }).waitFor();
    await expectNoHorizontalScroll(bob);
    await ann.getByLabel("Search messages").fill("x".repeat(600));
    await ann.getByRole("button", { name: "Search", exact: true }).click();
    await ann.getByRole("region", { name: "Search results" }).waitFor();
    await expectNoHorizontalScroll(ann);
    expect(await ann.getByRole("button", { name: "Sign out" }).isVisible()).toBe(true);
  });
});

test("block: email next to names, the blocked user cannot send or start, retry after unblock sends once", async () => {
  const ann = await newPage();
  const bob = await newPage();
  await scenario("block", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const id = await startChat(ann, bobEmail, "Bob Baker");
    await sendMessage(ann, "hi bob");
    // Emails next to names: the list and the thread header.
    await ann.getByTestId("conversation").filter({ hasText: bobEmail }).waitFor();
    await ann.locator(".thread-header").getByText(bobEmail).waitFor();

    // Bob blocks Ann (with a confirmation).
    await bob.getByTestId("conversation").filter({ hasText: annEmail }).click();
    await bob.getByRole("button", { name: "Block…" }).click();
    await bob.getByRole("group", { name: "Block Ann Archer?" }).getByRole("button", { name: "Block", exact: true }).click();
    await bob.getByText("You blocked Ann Archer. Unblock them to send messages.").waitFor();

    // Ann's message is refused, in words, with Retry; nothing reaches Bob.
    const box = ann.getByLabel("Message", { exact: true });
    await box.fill("are you there?");
    await box.press("Enter");
    const failed = ann.locator('[data-testid="message"][data-status="failed"]').filter({ hasText: "are you there?" });
    await failed.getByText("This person isn't accepting messages from you.").waitFor();
    expect(await axeViolations(ann), "a message not sent").toEqual([]);
    expect(await axeViolations(bob), "a blocked conversation").toEqual([]);
    await shot(ann, "desktop-not-sent");
    // Starting again is refused too.
    await ann.getByLabel("Start a chat by email").fill(bobEmail);
    await ann.getByRole("button", { name: "Start", exact: true }).click();
    await ann.locator(".start [role=alert]").filter({ hasText: "This person isn't accepting messages from you." }).waitFor();
    expect(psql(`SELECT count(*) FROM messages WHERE conversation_id = ${id}`)).toBe("1");

    // Bob unblocks; Ann's Retry sends it, once.
    await bob.getByRole("button", { name: "Unblock" }).click();
    await bob.getByLabel("Message", { exact: true }).waitFor();
    await failed.getByRole("button", { name: "Retry" }).click();
    await ann.locator('[data-testid="message"][data-status="sent"]').filter({ hasText: "are you there?" }).waitFor();
    await bob.getByTestId("message").filter({ hasText: "are you there?" }).waitFor();
    expect(psql(`SELECT count(*) FROM messages WHERE conversation_id = ${id} AND body = 'are you there?'`)).toBe("1");
    expect(await ann.locator('[data-status="failed"]').count()).toBe(0);
  });
});

/** Seeds n messages (alternating senders, 40 minutes apart, over several past days) into the
 * conversation with psql, as another service writing to the database would; they queue
 * themselves for search (schema 0008). */
function seedHistory(conversationId: string, emails: [string, string], n: number, words: (i: number) => string) {
  psql(`WITH u AS (SELECT array_agg(id ORDER BY email = '${emails[1]}') AS ids FROM users WHERE email IN ('${emails[0]}', '${emails[1]}'))
        INSERT INTO messages (sender_id, conversation_id, body, created_at)
        SELECT u.ids[1 + i % 2], ${conversationId}, 'history message ' || i || ' ' || (ARRAY[${Array.from({ length: n }, (_, i) => `'${words(i + 1)}'`).join(",")}])[i],
               now() - interval '70 hours' + i * interval '40 minutes'
        FROM u, generate_series(1, ${n}) i`);
}

test("history: infinite scroll up keeps your place, a pill instead of jumping, day separators, the start marker", async () => {
  const ann = await newPage();
  const bob = await newPage();
  await scenario("history", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const id = await startChat(bob, annEmail, "Bob Baker".replace("Bob Baker", "Ann Archer"));
    seedHistory(id, [annEmail, bobEmail], 95, (i) => (i % 10 === 0 ? "checkpoint" : "filler"));

    await ann.goto(`/c/${id}`);
    await ann.getByTestId("message").filter({ hasText: "history message 95 " }).waitFor();
    const messages = ann.locator(".messages");
    const atBottom = () =>
      messages.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 2);
    await until("the thread to open at the bottom", atBottom);
    await shot(ann, "desktop-thread");

    // Scrolling to the top loads older messages, and what was on screen stays where it was.
    const countBefore = await ann.getByTestId("message").count();
    const oldestText = `history message ${95 - countBefore + 1} `;
    const oldestShown = ann.getByTestId("message").filter({ hasText: oldestText });
    // Scroll to the top and measure in the same task, before the load it starts can land.
    const yBefore = await messages.evaluate((el, text) => {
      el.scrollTop = 0;
      const item = [...el.querySelectorAll("[data-testid=message]")].find((m) => m.textContent!.includes(text))!;
      return item.getBoundingClientRect().top;
    }, oldestText);
    await until("older messages", async () => (await ann.getByTestId("message").count()) > countBefore);
    await until("the view to settle", async () => Math.abs((await oldestShown.boundingBox())!.y - yBefore) < 2);
    expect(await messages.evaluate((el) => el.scrollTop)).toBeGreaterThan(100);

    // A new message while reading history: a pill, no jump.
    const yReading = (await oldestShown.boundingBox())!.y;
    await bob.goto(`/c/${id}`);
    await sendMessage(bob, "are you reading?");
    const pill = ann.getByRole("button", { name: "New messages" });
    await pill.waitFor();
    expect(Math.abs((await oldestShown.boundingBox())!.y - yReading)).toBeLessThan(2);
    await pill.click();
    await until("the bottom", atBottom);
    await ann.getByTestId("message").filter({ hasText: "are you reading?" }).waitFor();
    await pill.waitFor({ state: "detached" });

    // Up to the start of the conversation: the marker, and a separator for each day.
    await until("the start of the conversation", async () => {
      await messages.evaluate((el) => (el.scrollTop = 0));
      return (await ann.getByTestId("start-marker").count()) > 0;
    });
    await ann.getByText("This is the start of your conversation with Bob Baker.").waitFor();
    await ann.getByTestId("message").filter({ hasText: /history message 1 filler/ }).waitFor();
    expect(await ann.getByTestId("message").filter({ hasText: "history message" }).count()).toBe(95);
    expect(await ann.getByTestId("day-separator").count()).toBeGreaterThanOrEqual(3);
    await ann.getByTestId("day-separator").filter({ hasText: "Today" }).waitFor();

    // Only the new message was announced, not the history.
    const announced = await ann.getByTestId("announcer").innerText();
    expect(announced).toBe("Bob Baker: are you reading?");
  });
});

test("search: words and meaning ranked together, matches highlighted, a hit jumps to the message, no matches says so", async () => {
  const ann = await newPage();
  const bob = await newPage(PHONE);
  await scenario("search", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const id = await startChat(ann, bobEmail, "Bob Baker");
    seedHistory(id, [annEmail, bobEmail], 95, (i) => (i === 12 ? "the biology field trip is on tuesday" : "filler"));
    await ann.goto(`/c/${id}`);
    await ann.getByTestId("message").filter({ hasText: "history message 95 " }).waitFor();
    // The old message is not loaded yet.
    expect(await ann.getByTestId("message").filter({ hasText: "field trip" }).count()).toBe(0);

    await ann.getByLabel("Search messages").fill("biology trip");
    await ann.getByRole("button", { name: "Search", exact: true }).click();
    const hit = ann.getByTestId("search-hit").filter({ hasText: "the biology field trip is on tuesday" });
    await hit.waitFor();
    expect(await ann.getByTestId("search-hit").count()).toBe(1);
    await expect(hit.locator("mark").allInnerTexts()).resolves.toEqual(["biology", "trip"]);
    expect(new URL(ann.url()).searchParams.get("q")).toBe("biology trip");
    await shot(ann, "desktop-search-results");

    // A click loads history back to the message, shows it and marks it.
    await hit.click();
    const target = ann.locator(".message.highlighted").filter({ hasText: "the biology field trip is on tuesday" });
    await target.waitFor();
    await until("the message to be on screen", async () => {
      const box = await target.boundingBox();
      const list = await ann.locator(".messages").boundingBox();
      return !!box && !!list && box.y >= list.y && box.y + box.height <= list.y + list.height;
    });
    expect(new URL(ann.url()).searchParams.get("m")).toMatch(/^\d+$/);

    // Nothing close: says so, instead of ten unrelated messages.
    await ann.getByLabel("Search messages").fill("zebra quantum");
    await ann.getByRole("button", { name: "Search", exact: true }).click();
    await ann.getByTestId("no-matches").filter({ hasText: "No messages match “zebra quantum”" }).waitFor();
    expect(await ann.getByTestId("search-hit").count()).toBe(0);

    // The search has a URL: Bob, on a phone, opens it and sees the results.
    await bob.goto(`/c/${id}?q=${encodeURIComponent("field trip")}`);
    await bob.getByTestId("search-hit").filter({ hasText: "the biology field trip is on tuesday" }).waitFor();
    await shot(bob, "phone-search-from-url");
  });
});

test("live search: a matching message Bob sends shows up in Ann's open search, by words at once and by meaning once embedded", async () => {
  const ann = await newPage();
  const bob = await newPage(PHONE);
  await scenario("live-search", () => [ann, bob], async () => {
    const [annEmail, bobEmail] = [email("ann"), email("bob")];
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);
    const id = await startChat(ann, bobEmail, "Bob Baker");
    await sendMessage(ann, "is the chemistry homework due monday?");
    await ann.getByLabel("Search messages").fill("chemistry homework");
    await ann.getByRole("button", { name: "Search", exact: true }).click();
    const results = ann.getByRole("region", { name: "Search results" });
    await results.getByTestId("search-hit").filter({ hasText: "is the chemistry homework due monday?" }).waitFor();
    await until("matches by meaning", async () => (await results.getAttribute("data-semantic")) === "ready");
    const vectors = psql("SELECT count(*) FROM search_query_vectors");
    // The search stays open while Bob writes; nothing is clicked again.
    await bob.goto(`/c/${id}`);
    await sendMessage(bob, "the chemistry homework is page 12");
    const byWords = results.getByTestId("search-hit").filter({ hasText: "the chemistry homework is page 12" });
    await byWords.waitFor();
    await expect(byWords.locator("mark").allInnerTexts()).resolves.toEqual(["chemistry", "homework"]);
    // No word full text matches, close by the local provider's measure (shared word parts):
    // it shows once the embedding sweep has stored its vector.
    await sendMessage(bob, "chemistryhomework");
    await results.getByTestId("search-hit").filter({ has: ann.locator(".body", { hasText: /^chemistryhomework$/ }) }).waitFor();
    // Deleted by another service: gone from the open search.
    psql(`DELETE FROM messages WHERE conversation_id = ${id} AND body = 'the chemistry homework is page 12'`);
    await until("the deleted hit to go", async () => (await byWords.count()) === 0);
    expect(await results.getByTestId("search-hit").count()).toBe(2);
    expect(await results.getAttribute("data-semantic")).toBe("ready");
    await shot(ann, "desktop-live-search");
    // The query's vector was made once, not again for any of these updates.
    expect(psql("SELECT count(*) FROM search_query_vectors")).toBe(vectors);
  });
});

test("accessibility: axe finds no serious or critical violation on any screen, one h1 each; screenshots at both widths", async () => {
  for (const [label, viewport] of [["desktop", DESKTOP], ["phone", PHONE]] as const) {
    const ann = await newPage(viewport);
    const bob = await newPage(viewport);
    await scenario(`a11y-${label}`, () => [ann, bob], async () => {
      const check = async (page: Page, screen: string) => {
        expect(await axeViolations(page), `${label} ${screen}`).toEqual([]);
        expect(await page.locator("h1").count(), `${label} ${screen}: one h1`).toBe(1);
        await shot(page, `${label}-${screen}`);
      };
      await ann.goto("/");
      await ann.getByRole("heading", { name: "Sign in to Ripple Chat" }).waitFor();
      await check(ann, "sign-in");
      await ann.getByRole("button", { name: "Create an account" }).click();
      await ann.getByRole("heading", { name: "Create your account" }).waitFor();
      await check(ann, "sign-up");

      const [annEmail, bobEmail] = [email("ann"), email("bob")];
      await signUp(ann, "Ann Archer", annEmail);
      await signUp(bob, "Bob Baker", bobEmail);
      await check(ann, "empty");
      const id = await startChat(ann, bobEmail, "Bob Baker");
      await sendMessage(ann, "hello bob, see https://example.org/a");
      await sendMessage(ann, "second message");
      await bob.getByTestId("conversation").filter({ hasText: "Ann Archer" }).getByTestId("unread-badge").waitFor();
      await check(bob, "list-unread");
      await bob.goto(`/c/${id}`);
      await bob.getByTestId("message").filter({ hasText: "second message" }).waitFor();
      await sendMessage(bob, "hi ann");
      await check(bob, "thread");
      await bob.getByLabel("Search messages").fill("hello");
      await bob.getByRole("button", { name: "Search", exact: true }).click();
      await bob.getByRole("region", { name: "Search results" }).waitFor();
      await check(bob, "search");
      await bob.getByRole("button", { name: "Block…" }).click();
      await check(bob, "block-confirm");
      await bob.getByRole("button", { name: "Cancel" }).click();
      // The message list is not a live region: only the announcer (new messages) and the
      // connection status speak.
      const live = await bob.evaluate(() =>
        [...document.querySelectorAll("[aria-live], [role=status], [role=log]")].map((e) => e.getAttribute("data-testid")),
      );
      expect(live.sort()).toEqual(["announcer", "connection-banner"]);
    });
  }
});

async function expectNoHorizontalScroll(page: Page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: document.documentElement.clientWidth,
  }));
  expect(scroll).toBeLessThanOrEqual(width);
}

void baseUrl;

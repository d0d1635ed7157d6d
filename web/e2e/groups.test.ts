// Group conversations end to end in a real browser (harness.ts): three and four real users, each
// in their own browser context, against a real `ripple serve`.
import type { Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { axeViolations, dumpServerLog, email, newPage, PHONE, sendMessage, shot, signUp, startAll, stopAll, until } from "./harness";

beforeAll(startAll);
afterAll(stopAll);

async function scenario(name: string, pages: () => Page[], body: () => Promise<void>) {
  try {
    await body();
  } catch (err) {
    for (const [i, p] of pages().entries()) await shot(p, `failure-${name}-${i}`).catch(() => {});
    dumpServerLog();
    throw err;
  }
}

const entry = (page: Page, name: string) => page.getByTestId("conversation").filter({ hasText: name });
const systemLine = (page: Page, text: string) => page.getByTestId("system-line").filter({ hasText: text });
const theirMessage = (page: Page, text: string) =>
  page.locator('[data-testid="message"].theirs').filter({ hasText: text });

test("groups: create with per-address errors, sender names, system lines, rename, remove, leave; axe clean", async () => {
  const ann = await newPage();
  const bob = await newPage();
  const cat = await newPage(PHONE);
  await scenario("groups", () => [ann, bob, cat], async () => {
    const [bobEmail, catEmail] = [email("bob"), email("cat")];
    await signUp(ann, "Ann Archer", email("ann"));
    await signUp(bob, "Bob Baker", bobEmail);
    await signUp(cat, "Cat Cole", catEmail);

    // Ann opens the form with the keyboard; an unknown and a malformed address are each named.
    await ann.getByRole("button", { name: "New group…" }).focus();
    await ann.keyboard.press("Enter");
    await ann.getByLabel("Group name").fill("Year 7 Science");
    const ghost = email("ghost");
    await ann.getByLabel("Members' emails").fill(`${bobEmail}, ${ghost}\nnot-an-email`);
    await ann.getByRole("button", { name: "Create group" }).click();
    const refused = ann.getByTestId("refused-members");
    await refused.waitFor();
    expect(await refused.getByRole("listitem").allInnerTexts()).toEqual([
      "not-an-email: this doesn't look like an email address",
      `${ghost}: no one with this email has an account here`,
    ]);
    expect(await ann.getByRole("alert").first().innerText()).toContain("can't be added");
    expect(await axeViolations(ann), "new group form with errors").toEqual([]);

    await ann.getByLabel("Members' emails").fill(`${bobEmail}\n${catEmail}`);
    await ann.getByRole("button", { name: "Create group" }).click();
    await ann.getByRole("heading", { name: "Year 7 Science", level: 2 }).waitFor();
    await systemLine(ann, "Ann Archer created the group “Year 7 Science” with Bob Baker and Cat Cole").waitFor();

    // The others see it in their lists at once, named, with its member count.
    for (const p of [bob, cat]) await entry(p, "Year 7 Science").filter({ hasText: "3 members" }).waitFor();
    await sendMessage(ann, "Lab coats tomorrow please");
    await entry(bob, "Year 7 Science").click();
    await theirMessage(bob, "Lab coats tomorrow please").filter({ hasText: "Ann Archer" }).waitFor();
    await sendMessage(bob, "Will do");
    await entry(cat, "Year 7 Science").click();
    // Others' messages carry their sender's name.
    await theirMessage(cat, "Will do").filter({ hasText: "Bob Baker" }).waitFor();
    await theirMessage(cat, "Lab coats tomorrow please").filter({ hasText: "Ann Archer" }).waitFor();
    expect(await axeViolations(cat), "group thread on a phone").toEqual([]);
    expect(await axeViolations(bob), "group thread on a desktop").toEqual([]);

    // Members panel: Bob is not an admin, so he sees no Remove or Rename.
    await bob.getByRole("button", { name: "Members" }).click();
    const bobPanel = bob.getByTestId("members-panel");
    await bobPanel.waitFor();
    expect(await bobPanel.getByTestId("member").count()).toBe(3);
    expect(await bobPanel.getByRole("button", { name: /^Remove/ }).count()).toBe(0);
    expect(await bobPanel.getByLabel("Group name").count()).toBe(0);

    // Ann renames the group and removes Cat; both appear as system lines for everyone left.
    await ann.getByRole("button", { name: "Members" }).click();
    const annPanel = ann.getByTestId("members-panel");
    await annPanel.getByText("admin", { exact: true }).waitFor();
    expect(await axeViolations(ann), "members panel").toEqual([]);
    await annPanel.getByLabel("Group name").fill("Y7 Science");
    await annPanel.getByRole("button", { name: "Rename" }).click();
    await systemLine(bob, "Ann Archer renamed the group to “Y7 Science”").waitFor();
    await bob.getByRole("heading", { name: "Y7 Science", level: 2 }).waitFor();
    await annPanel.getByRole("button", { name: "Remove Cat Cole from the group" }).click();
    await systemLine(bob, "Ann Archer removed Cat Cole").waitFor();

    // Cat loses the group at once: its thread is refused and it leaves her list.
    await cat.getByText("You can't open this conversation").waitFor();
    await until("the group leaves Cat's list", async () => (await entry(cat, "Y7 Science").count()) === 0);
    expect(await axeViolations(cat), "removed member").toEqual([]);

    // Bob leaves; Ann sees it, and now sees a member count of one.
    await bob.getByRole("button", { name: "Leave group…" }).click();
    await bob.getByRole("button", { name: "Leave", exact: true }).click();
    await until("the group leaves Bob's list", async () => (await entry(bob, "Y7 Science").count()) === 0);
    await systemLine(ann, "Bob Baker left").waitFor();
    await entry(ann, "Y7 Science").filter({ hasText: "1 member" }).waitFor();
  });
});

test("groups: an admin adds people, a blocked member's messages are folded away, unread per member", async () => {
  const ann = await newPage();
  const bob = await newPage();
  const cat = await newPage();
  const dan = await newPage();
  await scenario("groups-add", () => [ann, bob, cat, dan], async () => {
    const [bobEmail, catEmail, danEmail] = [email("bob"), email("cat"), email("dan")];
    await signUp(ann, "Ann Archer", email("ann"));
    await signUp(bob, "Bob Baker", bobEmail);
    await signUp(cat, "Cat Cole", catEmail);
    await signUp(dan, "Dan Dale", danEmail);

    await ann.getByRole("button", { name: "New group…" }).click();
    await ann.getByLabel("Group name").fill("Chess club");
    await ann.getByLabel("Members' emails").fill(`${bobEmail}, ${catEmail}`);
    await ann.getByRole("button", { name: "Create group" }).click();
    await ann.getByRole("heading", { name: "Chess club", level: 2 }).waitFor();

    // Cat blocks Bob (from a direct chat); Bob's group messages reach her folded away.
    await cat.getByLabel("Start a chat by email").fill(bobEmail);
    await cat.getByRole("button", { name: "Start", exact: true }).click();
    await cat.getByRole("heading", { name: "Bob Baker", level: 2 }).waitFor();
    await cat.getByRole("button", { name: "Block…" }).click();
    await cat.getByRole("button", { name: "Block", exact: true }).click();
    await cat.getByRole("button", { name: "Unblock" }).waitFor();

    await entry(bob, "Chess club").click();
    await sendMessage(bob, "Anyone for a game?");
    // Unread per member: Cat (in another chat) has one, Bob (the sender) none.
    await entry(cat, "Chess club").getByTestId("unread-badge").waitFor();
    expect(await entry(bob, "Chess club").getByTestId("unread-badge").count()).toBe(0);
    await entry(cat, "Chess club").click();
    const folded = cat.locator("details.blocked-message");
    await folded.waitFor();
    expect(await folded.getByText("Anyone for a game?").isVisible()).toBe(false);
    await folded.getByText("Message from someone you blocked").click();
    expect(await folded.getByText("Anyone for a game?").isVisible()).toBe(true);
    expect(await axeViolations(cat), "folded message").toEqual([]);
    await theirMessage(ann, "Anyone for a game?").waitFor();

    // Ann adds Dan; an address already in the group is no error, an unknown one is named.
    await ann.getByRole("button", { name: "Members" }).click();
    const panel = ann.getByTestId("members-panel");
    const ghost = email("ghost");
    await panel.getByLabel("Add people by email").fill(`${danEmail} ${ghost}`);
    await panel.getByRole("button", { name: "Add", exact: true }).click();
    await panel.getByTestId("refused-members").getByText(ghost).waitFor();
    await panel.getByLabel("Add people by email").fill(`${danEmail} ${bobEmail}`);
    await panel.getByRole("button", { name: "Add", exact: true }).click();
    await systemLine(ann, "Ann Archer added Dan Dale").waitFor();
    // Dan sees the group with its history and nothing unread.
    await entry(dan, "Chess club").filter({ hasText: "4 members" }).waitFor();
    expect(await entry(dan, "Chess club").getByTestId("unread-badge").count()).toBe(0);
    await entry(dan, "Chess club").click();
    await theirMessage(dan, "Anyone for a game?").filter({ hasText: "Bob Baker" }).waitFor();
    expect(await axeViolations(dan), "a newcomer's thread").toEqual([]);
  });
});

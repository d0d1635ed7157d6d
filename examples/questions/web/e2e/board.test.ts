// The question board in a real browser: two students and a teacher, each in a browser context
// of their own, against `questions serve` on a fresh Postgres schema. Questions, votes (the
// board's order) and answers reach every screen live.
//
// Environment: DATABASE_URL (default: the local `make db` server), RIPPLE_CHROMIUM (default
// /usr/bin/chromium), RIPPLE_E2E_SKIP_BUILD=1 to reuse dist/ as it is.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(webDir, "../../..");
const databaseUrl = process.env.DATABASE_URL || "postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable";
const schema = `e2e_questions_${process.pid}_${Date.now().toString(36)}`;

let tmp = "";
let server: ChildProcess | undefined;
let serverLog = "";
let baseUrl = "";
let browser: Browser | undefined;

function psql(sql: string): string {
  return execFileSync("psql", [databaseUrl, "-qtA", "-v", "ON_ERROR_STOP=1", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: `-c client_min_messages=warning -c search_path=${schema},public` },
  }).trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "questions-e2e-"));
  if (!process.env.RIPPLE_E2E_SKIP_BUILD || !existsSync(path.join(webDir, "dist", "index.html"))) {
    execFileSync("npm", ["run", "build"], { cwd: webDir, stdio: ["ignore", "inherit", "inherit"] });
  }
  const bin = path.join(tmp, "questions");
  execFileSync("go", ["build", "-o", bin, "./examples/questions/cmd/questions"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--schema", schema, "--static", path.join(webDir, "dist")], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout!.on("data", (d) => (serverLog += d));
  server.stderr!.on("data", (d) => (serverLog += d));
  // Ready when /readyz answers 200 (migrated, listening for changes).
  for (;;) {
    if (server.exitCode !== null) throw new Error(`questions serve exited:\n${serverLog}`);
    const ok = await fetch(`${baseUrl}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({
    executablePath: process.env.RIPPLE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

afterAll(async () => {
  await browser?.close().catch(() => {});
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  try {
    psql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
});

async function signUp(name: string): Promise<Page> {
  const context = await browser!.newContext({ baseURL: baseUrl });
  const page = await context.newPage();
  await page.goto("/");
  await page.getByPlaceholder("Name").fill(name);
  await page.getByPlaceholder("Email").fill(`${name.toLowerCase()}@school.example`);
  await page.getByPlaceholder("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByText(`Signed in as ${name}`).waitFor();
  return page;
}

async function ask(page: Page, body: string) {
  await page.getByLabel("Your question").fill(body);
  await page.getByRole("button", { name: "Ask" }).click();
}

/** The board's questions, top to bottom, as "<votes> <body>". */
async function board(page: Page): Promise<string[]> {
  return page.locator("ol[aria-label=Questions] > li").evaluateAll((lis) =>
    lis.map((li) => `${li.querySelector(".votes")!.textContent} ${li.querySelector(".body")!.textContent}`),
  );
}

test("questions, votes and answers are live on every screen", async () => {
  try {
    const ann = await signUp("Ann");
    const bob = await signUp("Bob");

    await ask(ann, "What is a monad?");
    await ask(bob, "When is the exam?");
    await expect.poll(() => board(ann)).toEqual(["0 When is the exam?", "0 What is a monad?"]);
    await expect.poll(() => board(bob)).toEqual(["0 When is the exam?", "0 What is a monad?"]);

    // Ann upvotes the older question: it moves to the top on Bob's screen too.
    const monad = ann.locator("li", { hasText: "What is a monad?" });
    await monad.getByRole("button", { name: "Upvote" }).click();
    await expect.poll(() => monad.getByRole("button", { name: "Upvote" }).isDisabled()).toBe(true);
    await expect.poll(() => board(bob)).toEqual(["1 What is a monad?", "0 When is the exam?"]);
    await expect.poll(() => board(ann)).toEqual(["1 What is a monad?", "0 When is the exam?"]);

    // The teacher: named by an operator; their screen learns it live (users:me re-runs).
    const tess = await signUp("Tess");
    expect(await tess.getByRole("button", { name: "Mark answered" }).count()).toBe(0);
    psql(`UPDATE users SET is_teacher = true WHERE email = 'tess@school.example'`);
    await tess.getByText("Signed in as Tess (teacher)").waitFor();
    await tess.locator("li", { hasText: "When is the exam?" }).getByRole("button", { name: "Mark answered" }).click();
    await bob.locator("li", { hasText: "When is the exam?" }).getByText("answered").waitFor();
    await bob.getByText("Open questions: 1").waitFor();

    // A student cannot answer, whatever the page shows: the server refuses.
    const res = await ann.evaluate(async () => {
      const session = JSON.parse(localStorage.getItem("ripple.session") ?? "{}");
      const r = await fetch("/http/questions.csv", { headers: { Authorization: `Bearer ${session.accessToken}` } });
      return r.status;
    });
    expect(res).toBe(403);
  } catch (err) {
    console.error("questions serve output:\n" + serverLog);
    throw err;
  }
});

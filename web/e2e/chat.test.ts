// The chat end to end in a real browser: builds the web app and `ripple`, serves them on a free
// port over a fresh Postgres schema, and drives Debian's Chromium (scripts/chromium.sh) with
// playwright-core. Two users, Ann and Bob, in two browser contexts.
//
// Environment: DATABASE_URL (default: the local `make db` server), RIPPLE_CHROMIUM (default
// /usr/bin/chromium), RIPPLE_E2E_SKIP_BUILD=1 to reuse web/dist as it is.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(webDir, "..");
const screenshots = path.join(webDir, "e2e", "screenshots");
const databaseUrl =
  process.env.DATABASE_URL || "postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable";
const chromiumPath = process.env.RIPPLE_CHROMIUM || "/usr/bin/chromium";
const schema = `e2e_web_${process.pid}_${Date.now().toString(36)}`;

let tmp = "";
let server: ChildProcess | undefined;
let serverLog = "";
let baseUrl = "";
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "ripple-e2e-"));
  // The binary embeds web/dist, so the app is built first (unless `make build` just did).
  if (!process.env.RIPPLE_E2E_SKIP_BUILD || !existsSync(path.join(webDir, "dist", "index.html"))) {
    execFileSync("npm", ["run", "build"], { cwd: webDir, stdio: ["ignore", "inherit", "inherit"] });
  }
  const bin = path.join(tmp, "ripple");
  execFileSync("go", ["build", "-o", bin, "./cmd/ripple"], {
    cwd: repoRoot,
    stdio: ["ignore", "inherit", "inherit"],
  });

  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--schema", schema], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: databaseUrl, RIPPLE_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (b: Buffer) => {
    serverLog = (serverLog + b.toString()).slice(-20_000);
  };
  server.stdout!.on("data", keep);
  server.stderr!.on("data", keep);
  await waitReady(server, `${baseUrl}/readyz`, 60_000);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    // A fresh --user-data-dir: launch() gives every run its own temporary profile (it refuses
    // the flag itself; that is launchPersistentContext's job).
  });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise<void>((resolve) => server!.once("exit", () => resolve()));
    server.kill("SIGTERM");
    const timer = setTimeout(() => server!.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  try {
    execFileSync("psql", [databaseUrl, "-q", "-v", "ON_ERROR_STOP=1", "-c", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" },
    });
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
});

test("two users chat live and search", async () => {
  const suffix = Date.now().toString(36);
  const annEmail = `ann-${suffix}@example.com`;
  const bobEmail = `bob-${suffix}@example.com`;

  const ann = await newPage();
  const bob = await newPage();
  try {
    await signUp(ann, "Ann Archer", annEmail);
    await signUp(bob, "Bob Baker", bobEmail);

    // Ann starts a chat with Bob and says hello.
    await ann.getByLabel("Start a chat by email").fill(bobEmail);
    await ann.getByRole("button", { name: "Start", exact: true }).click();
    await ann.getByRole("heading", { name: "Bob Baker" }).waitFor();
    const annBox = ann.getByLabel("Message", { exact: true });
    await expectDisabled(ann.getByRole("button", { name: "Send" }), true);
    await annBox.fill("hello bob");
    await annBox.press("Enter");
    await ann.getByTestId("message").filter({ hasText: "hello bob" }).waitFor();
    await expect(annBox.inputValue()).resolves.toBe("");

    // Bob's list shows it without a reload; opening it shows the thread.
    const bobConv = bob.getByTestId("conversation").filter({ hasText: "Ann Archer" });
    await bobConv.filter({ hasText: "hello bob" }).waitFor();
    await bobConv.click();
    const hello = bob.getByTestId("message").filter({ hasText: "hello bob" });
    await hello.waitFor();
    await expect(hello.getAttribute("class")).resolves.toContain("theirs");

    // Bob replies; Ann sees it live.
    const bobBox = bob.getByLabel("Message", { exact: true });
    await bobBox.fill("hi ann, how are you?");
    await bob.getByRole("button", { name: "Send" }).click();
    await bob.getByTestId("message").filter({ hasText: "hi ann, how are you?" }).waitFor();
    const reply = ann.getByTestId("message").filter({ hasText: "hi ann, how are you?" });
    await reply.waitFor();
    await expect(reply.getAttribute("class")).resolves.toContain("theirs");
    await ann.getByTestId("conversation").filter({ hasText: "hi ann, how are you?" }).waitFor();
    const mine = ann.getByTestId("message").filter({ hasText: "hello bob" });
    await expect(mine.getAttribute("class")).resolves.toContain("mine");

    // Ann searches (embeddings are made by a background job, so the hit may take a moment:
    // retry the search until it shows up).
    await ann.getByLabel("Search messages").fill("hello");
    const hit = ann.getByTestId("search-hit").filter({ hasText: "hello bob" });
    const deadline = Date.now() + 30_000;
    for (;;) {
      await ann.getByRole("button", { name: "Search", exact: true }).click();
      const results = ann.getByRole("region", { name: "Search results" });
      await results.waitFor();
      try {
        await hit.waitFor({ timeout: 2_000 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }

    mkdirSync(screenshots, { recursive: true });
    await ann.screenshot({ path: path.join(screenshots, "ann-chat.png"), fullPage: true });
  } catch (err) {
    mkdirSync(screenshots, { recursive: true });
    await ann.screenshot({ path: path.join(screenshots, "failure-ann.png") }).catch(() => {});
    await bob.screenshot({ path: path.join(screenshots, "failure-bob.png") }).catch(() => {});
    console.error("ripple serve output:\n" + serverLog);
    throw err;
  }
});

async function newPage(): Promise<Page> {
  const context = await browser!.newContext({ baseURL: baseUrl, viewport: { width: 1100, height: 700 } });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (err) => console.error("page error:", err));
  return page;
}

async function signUp(page: Page, name: string, email: string) {
  await page.goto("/");
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByText(`Signed in as ${name}`).waitFor();
}

async function expectDisabled(locator: ReturnType<Page["getByRole"]>, disabled: boolean) {
  await expect(locator.isDisabled()).resolves.toBe(disabled);
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

async function waitReady(child: ChildProcess, url: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`ripple serve exited with ${child.exitCode}:\n${serverLog}`);
    }
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ripple serve not ready within ${timeoutMs} ms:\n${serverLog}`);
}

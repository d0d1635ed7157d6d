// The browser suite's harness: builds the web app and `ripple`, serves them on a free port over
// a fresh Postgres schema (restartable, for outages), and drives Debian's Chromium
// (scripts/chromium.sh) with playwright-core. Also: sign-up, psql, axe-core, screenshots.
//
// Environment: DATABASE_URL (default: the local `make db` server), RIPPLE_CHROMIUM (default
// /usr/bin/chromium), RIPPLE_E2E_SKIP_BUILD=1 to reuse web/dist as it is.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from "playwright-core";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(webDir, "..");
export const screenshots = path.join(webDir, "e2e", "screenshots");
const databaseUrl = process.env.DATABASE_URL || "postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable";
const chromiumPath = process.env.RIPPLE_CHROMIUM || "/usr/bin/chromium";
const schema = `e2e_web_${process.pid}_${Date.now().toString(36)}`;
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let tmp = "";
let bin = "";
let port = 0;
let server: ChildProcess | undefined;
let serverLog = "";
export let baseUrl = "";
let browser: Browser | undefined;
const contexts: BrowserContext[] = [];

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function startAll() {
  tmp = mkdtempSync(path.join(tmpdir(), "ripple-e2e-"));
  // The binary embeds web/dist, so the app is built first (unless `make build` just did).
  if (!process.env.RIPPLE_E2E_SKIP_BUILD || !existsSync(path.join(webDir, "dist", "index.html"))) {
    execFileSync("npm", ["run", "build"], { cwd: webDir, stdio: ["ignore", "inherit", "inherit"] });
  }
  bin = path.join(tmp, "ripple");
  execFileSync("go", ["build", "-o", bin, "./cmd/ripple"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  await startServer();
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
    // A fresh --user-data-dir: launch() gives every run its own temporary profile.
  });
}

export async function stopAll() {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  await stopServer();
  try {
    psql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** Starts `ripple serve` on the suite's port and schema and waits until it is ready. */
export async function startServer() {
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
}

/** Stops the server (SIGTERM, SIGKILL after 10 s) and waits for it to exit. */
export async function stopServer() {
  const s = server;
  if (!s || s.exitCode !== null || s.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => s.once("exit", () => resolve()));
  s.kill("SIGTERM");
  const timer = setTimeout(() => s.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

export function dumpServerLog() {
  console.error("ripple serve output:\n" + serverLog);
}

/** Runs SQL in the suite's schema; returns psql's unaligned, tuples-only output. */
export function psql(sql: string): string {
  return execFileSync("psql", [databaseUrl, "-qtA", "-v", "ON_ERROR_STOP=1", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: `-c client_min_messages=warning -c search_path=${schema},public` },
  }).trim();
}

export type Viewport = { width: number; height: number };

export async function newPage(viewport: Viewport = DESKTOP, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser!.newContext({ baseURL: baseUrl, viewport, ...options });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (err) => console.error("page error:", err));
  return page;
}

let counter = 0;
/** A fresh user's email (unique per run). */
export function email(name: string) {
  return `${name.toLowerCase()}-${Date.now().toString(36)}-${++counter}@example.com`;
}

export async function signUp(page: Page, name: string, address: string) {
  // Every browser here signs up from 127.0.0.1, which the server allows 20 sign-ups an hour:
  // the suite's users are many people, so their address's count starts afresh for each.
  psql("DELETE FROM ripple_auth_rate_limits WHERE bucket LIKE 'signup_address:%'");
  await page.goto("/");
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(address);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByRole("heading", { name: "Ripple Chat", level: 1 }).waitFor();
}

/** Starts (or opens) the chat with the user of the email; returns the conversation id. */
export async function startChat(page: Page, address: string, name: string): Promise<string> {
  await page.getByLabel("Start a chat by email").fill(address);
  await page.getByRole("button", { name: "Start", exact: true }).click();
  await page.getByRole("heading", { name, level: 2 }).waitFor();
  await page.waitForURL(/\/c\/\d+/);
  return /\/c\/(\d+)/.exec(page.url())![1];
}

export async function sendMessage(page: Page, text: string) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
  await page.locator('[data-testid="message"][data-status="sent"]').filter({ hasText: text }).last().waitFor();
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // @ts-expect-error axe is injected above
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return (r.violations as { id: string; impact: string; nodes: { target: string[] }[] }[]).map((v) => ({
      id: v.id,
      impact: v.impact,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  return result
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.targets.join(", ")}`);
}

export async function shot(page: Page, name: string) {
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: path.join(screenshots, `${name}.png`) });
}

/** Polls fn until it returns true (conditions, not sleeps), failing after timeoutMs. */
export async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
    if (child.exitCode !== null) throw new Error(`ripple serve exited with ${child.exitCode}:\n${serverLog}`);
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

// Builds `ripple` (cmd/ripple; see ripple-serve.ts) for tests that run the chat's functions, and
// builds and starts internal/testserver (a Ripple engine with test functions over a fresh
// Postgres schema) once for the whole run, and provides its URL to tests as "serverUrl" and the
// built binary as "serverBin" (so a test file can start a server of its own with other flags,
// e.g. auth.test.ts with a short --access-token-ttl; see startServer/stopServer below).
//
// Environment:
//   RIPPLE_TEST_SERVER_URL  use an already-running server instead of building one ("serverBin"
//     is then empty, and tests that need their own server use RIPPLE_TEST_SHORT_TTL_SERVER_URL
//     or are skipped)
//   RIPPLE_TESTSERVER_VERBOSE=1  pass -v to the server (engine logs on stderr)
//   DATABASE_URL / TEST_DATABASE_URL  passed through to the server
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    serverUrl: string;
    serverBin: string;
    /** The `ripple` binary (cmd/ripple), for tests against the chat's own functions. */
    rippleBin: string;
  }
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export default async function setup(project: TestProject) {
  const external = process.env.RIPPLE_TEST_SERVER_URL;
  if (external) {
    project.provide("serverUrl", external);
    project.provide("serverBin", "");
    project.provide("rippleBin", "");
    return;
  }

  const dir = mkdtempSync(path.join(tmpdir(), "ripple-testserver-"));
  const bin = path.join(dir, "testserver");
  const rippleBin = path.join(dir, "ripple");
  for (const [out, pkg] of [
    [bin, "./internal/testserver"],
    [rippleBin, "./cmd/ripple"],
  ]) {
    execFileSync("go", ["build", "-o", out, pkg], {
      cwd: repoRoot,
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 300_000,
    });
  }

  let server: RunningServer;
  try {
    server = await startServer(bin);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  project.provide("serverUrl", server.url);
  project.provide("serverBin", bin);
  project.provide("rippleBin", rippleBin);

  return async () => {
    await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  };
}

export type RunningServer = { url: string; child: ChildProcess };

/**
 * Starts a built testserver with extra flags and waits until it listens. Its stdin stays a
 * pipe: if the starting process dies, the server sees EOF and drops its schema.
 */
export async function startServer(bin: string, extraArgs: string[] = []): Promise<RunningServer> {
  const args = [...(process.env.RIPPLE_TESTSERVER_VERBOSE ? ["-v"] : []), ...extraArgs];
  const child = spawn(bin, args, { cwd: repoRoot, stdio: ["pipe", "pipe", "inherit"] });
  try {
    return { url: await firstLine(child, 120_000), child };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

export async function stopServer(server: RunningServer): Promise<void> {
  await stop(server.child);
}

function firstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`testserver did not start within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`testserver exited before listening (code ${code}, signal ${signal})`));
    };
    child.once("exit", onExit);
    rl.once("line", (line) => {
      clearTimeout(timer);
      child.off("exit", onExit);
      const m = /^listening on (http:\/\/\S+)$/.exec(line.trim());
      if (!m) {
        reject(new Error(`unexpected first line from testserver: ${JSON.stringify(line)}`));
        return;
      }
      // Keep draining stdout so the server never blocks on a full pipe.
      child.stdout!.resume();
      resolve(m[1]);
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

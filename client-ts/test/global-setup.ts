// Builds and starts internal/testserver (a Ripple engine with test functions over a fresh
// Postgres schema) once for the whole run, and provides its URL to tests as "serverUrl".
//
// Environment:
//   RIPPLE_TEST_SERVER_URL  use an already-running server instead of building one
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
  }
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export default async function setup(project: TestProject) {
  const external = process.env.RIPPLE_TEST_SERVER_URL;
  if (external) {
    project.provide("serverUrl", external);
    return;
  }

  const dir = mkdtempSync(path.join(tmpdir(), "ripple-testserver-"));
  const bin = path.join(dir, "testserver");
  execFileSync("go", ["build", "-o", bin, "./internal/testserver"], {
    cwd: repoRoot,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 300_000,
  });

  const args = process.env.RIPPLE_TESTSERVER_VERBOSE ? ["-v"] : [];
  // stdin stays a pipe: if this process dies, the server sees EOF and drops its schema.
  const child = spawn(bin, args, { cwd: repoRoot, stdio: ["pipe", "pipe", "inherit"] });
  let url: string;
  try {
    url = await firstLine(child, 120_000);
  } catch (err) {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  project.provide("serverUrl", url);

  return async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
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

// A real `ripple serve` (the chat's functions, accounts, the sync API) on its own Postgres schema,
// restartable on the same port and schema, for the tests of @ripplehq/client.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const databaseUrl =
  process.env.DATABASE_URL || "postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable";

export type RippleServe = {
  url: string;
  schema: string;
  /** Stops the server (SIGTERM, as an operator would), keeping its schema. */
  stop(): Promise<void>;
  /** Kills the server (SIGKILL, as a crash would), keeping its schema. */
  kill(): Promise<void>;
  /** Starts it again on the same port and schema. */
  start(): Promise<void>;
  /** Stops it and drops its schema. */
  destroy(): Promise<void>;
  /** The server's recent log, for failure messages. */
  log(): string;
};

export async function startRippleServe(bin: string, env: Record<string, string> = {}): Promise<RippleServe> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const schema = `client_ts_${process.pid}_${Date.now().toString(36)}`;
  let child: ChildProcess | null = null;
  let log = "";

  const start = async () => {
    const c = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--schema", schema], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: databaseUrl, RIPPLE_LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    const listening = new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => {
        log = (log + b.toString()).slice(-20_000);
        if (log.includes(`serving on ${url}`)) resolve();
      };
      c.stdout!.on("data", onData);
      c.stderr!.on("data", onData);
      c.once("exit", (code, signal) => reject(new Error(`ripple serve exited (code ${code}, signal ${signal}): ${log.slice(-2000)}`)));
    });
    await listening;
  };

  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill(signal);
    const timer = setTimeout(() => c.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    url,
    schema,
    stop: () => stop(),
    kill: () => stop("SIGKILL"),
    start,
    async destroy() {
      await stop();
      execFileSync("psql", [databaseUrl, "-q", "-c", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { stdio: "ignore" });
    },
    log: () => log,
  };
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

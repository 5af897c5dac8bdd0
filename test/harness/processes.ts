// Child processes of the control plane: start with output to a log file, notice early exits,
// stop gracefully (SIGTERM, then SIGKILL), and a few network helpers for readiness checks.

import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';

/**
 * Processes (or process groups, as negative pids) to SIGKILL if this Node process exits without
 * stopping them, e.g. when ava kills a worker on timeout; otherwise they would outlive the test run.
 */
const orphanGuard = new Set<number>();
let orphanGuardInstalled = false;

/** Registers `pid` (negative: a process group) to be killed when this process exits; returns an unregister function. */
export function killOnExit(pid: number): () => void {
  if (!orphanGuardInstalled) {
    orphanGuardInstalled = true;
    const killAll = (): void => {
      for (const p of orphanGuard) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    process.on('exit', killAll);
    // A signal ends the process without 'exit'. If nobody else handles it, clean up and re-raise
    // it so the process still dies of that signal; if someone does (the cluster daemon stops
    // gracefully), leave it to them.
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.once(signal, () => {
        if (process.listenerCount(signal) > 0) return;
        killAll();
        process.kill(process.pid, signal);
      });
    }
  }
  orphanGuard.add(pid);
  return () => orphanGuard.delete(pid);
}

/** Raised when a component fails to start or becomes unhealthy; the message ends with its log tail. */
export class ComponentError extends Error {
  override name = 'ComponentError';
}

/** A running component process. */
export class ComponentProcess {
  readonly name: string;
  readonly logPath: string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly closed: Promise<string>;
  #child: ChildProcess;
  #exited = false;

  private constructor(name: string, logPath: string, child: ChildProcess) {
    this.name = name;
    this.logPath = logPath;
    this.#child = child;
    const unregister = child.pid !== undefined ? killOnExit(child.pid) : () => true;
    this.closed = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        unregister();
        this.#exited = true;
        resolve(signal ?? `exit ${String(code)}`);
      });
      child.on('error', (err) => {
        this.#exited = true;
        resolve(`spawn error: ${err.message}`);
      });
    });
  }

  /** Spawns `bin args` (environment: this process's plus `env`), appending stdout and stderr to `logPath`. */
  static async start(
    name: string,
    bin: string,
    args: readonly string[],
    logPath: string,
    env: Readonly<Record<string, string>> = {},
  ): Promise<ComponentProcess> {
    const log = await open(logPath, 'a');
    try {
      const child = spawn(bin, args, { stdio: ['ignore', log.fd, log.fd], env: { ...process.env, ...env } });
      return new ComponentProcess(name, logPath, child);
    } finally {
      await log.close(); // the child holds its own copy of the descriptor
    }
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#exited) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.closed;
    clearTimeout(timer);
  }

  /** The last `lines` lines of the component's log. */
  async logTail(lines = 30): Promise<string> {
    try {
      return (await readFile(this.logPath, 'utf8'))
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '(no log)';
    }
  }
}

const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago and not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** TLS material for a health probe; omit for "any certificate" (loopback self-signed components). */
export interface ProbeTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** GETs `url`; resolves with status code and body, or rejects on connection errors. */
export function httpGet(url: string, tls?: ProbeTls, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req =
      u.protocol === 'https:'
        ? httpsRequest(u, {
            ...(tls?.ca !== undefined ? { ca: tls.ca } : { rejectUnauthorized: false }),
            ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
            ...(tls?.key !== undefined ? { key: tls.key } : {}),
            timeout: timeoutMs,
          })
        : httpRequest(u, { timeout: timeoutMs });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls `url` until it answers 200 (and `accept(body)` if given). Fails early with the
 * component's log tail if the process exits, or after `timeoutMs`.
 */
export async function waitHealthy(
  proc: ComponentProcess,
  url: string,
  opts: { timeoutMs: number; tls?: ProbeTls; accept?: (body: string) => boolean },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc.exited) {
      throw new ComponentError(`${proc.name} exited during start (${await proc.closed}); log ${proc.logPath}:\n${await proc.logTail()}`);
    }
    try {
      const res = await httpGet(url, opts.tls, 2000);
      if (res.status === 200 && (opts.accept === undefined || opts.accept(res.body))) return;
      last = `HTTP ${res.status}: ${res.body.slice(0, 300)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new ComponentError(`${proc.name} not healthy at ${url} after ${opts.timeoutMs} ms (${last}); log ${proc.logPath}:\n${await proc.logTail()}`);
}

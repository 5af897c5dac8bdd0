// The operator's HTTP endpoint on node:http: GET /metrics (Prometheus text), /healthz (liveness)
// and /readyz (readiness: every check passes — caches synced and, with leader election, the
// elector is running, leading or standing by). Failing checks are named in the 503 body, as the
// apiserver's /readyz?verbose does.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** A named check: true when healthy, otherwise a short reason. */
export interface HealthCheck {
  readonly name: string;
  check(): true | string;
}

/** Options of startOperatorServer. */
export interface OperatorServerOptions {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Default '0.0.0.0'. */
  readonly host?: string;
  readonly registry: Registry;
  /** Checks of /readyz. */
  readonly readiness?: readonly HealthCheck[];
  /** Checks of /healthz (default none: alive while it answers). */
  readonly liveness?: readonly HealthCheck[];
}

/** A listening server. */
export interface OperatorServer {
  readonly port: number;
  /** e.g. http://127.0.0.1:8080 (no trailing slash). */
  readonly url: string;
  /** Stops listening and ends open connections (idempotent). */
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

/** Raised when the server cannot listen. */
export class OperatorServerError extends Error {
  override readonly name = 'OperatorServerError';
}

/** Readiness of informers: all have synced. */
export function cachesSyncedCheck(informers: readonly { readonly name: string; hasSynced(): boolean }[]): HealthCheck {
  return {
    name: 'informers',
    check: () => {
      const pending = informers.filter((i) => !i.hasSynced()).map((i) => i.name);
      return pending.length === 0 ? true : `not synced: ${pending.join(', ')}`;
    },
  };
}

/** Readiness under leader election: leading or standing by; not once the elector has stopped (lost or closed). */
export function leaderElectionCheck(elector: { readonly state: string }): HealthCheck {
  return {
    name: 'leader-election',
    check: () => (elector.state === 'leading' || elector.state === 'standby' ? true : `elector ${elector.state}`),
  };
}

function runChecks(checks: readonly HealthCheck[]): { ok: boolean; body: string } {
  const lines: string[] = [];
  let ok = true;
  for (const c of checks) {
    let r: true | string;
    try {
      r = c.check();
    } catch (err) {
      r = err instanceof Error ? err.message : String(err);
    }
    if (r === true) lines.push(`[+]${c.name} ok`);
    else {
      ok = false;
      lines.push(`[-]${c.name} failed: ${r}`);
    }
  }
  lines.push(ok ? 'ok' : 'not ok');
  return { ok, body: `${lines.join('\n')}\n` };
}

async function handle(o: OperatorServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const text = { 'Content-Type': 'text/plain; charset=utf-8' };
  if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
    res.writeHead(404, text).end('not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...text, Allow: 'GET, HEAD' }).end('method not allowed\n');
    return;
  }
  const head = req.method === 'HEAD';
  if (path === '/metrics') {
    try {
      const body = await o.registry.metrics();
      res.writeHead(200, { 'Content-Type': o.registry.contentType }).end(head ? undefined : body);
    } catch (err) {
      res.writeHead(500, text).end(`collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    return;
  }
  const { ok, body } = runChecks(path === '/readyz' ? (o.readiness ?? []) : (o.liveness ?? []));
  res.writeHead(ok ? 200 : 503, text).end(head ? undefined : body);
}

/** Starts serving; resolves once listening. */
export async function startOperatorServer(o: OperatorServerOptions): Promise<OperatorServer> {
  const host = o.host ?? '0.0.0.0';
  const server = createServer((req, res) => void handle(o, req, res));
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new OperatorServerError(`cannot listen on ${host}:${o.port}`, { cause: err }));
    server.once('error', onError);
    server.listen(o.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address: AddressInfo | string | null = server.address();
  if (address === null || typeof address === 'string') {
    server.close();
    throw new OperatorServerError(`bound to no TCP port (${String(address)})`);
  }
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    closed,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

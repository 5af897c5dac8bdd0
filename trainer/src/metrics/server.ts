// A minimal scrape endpoint on node:http: GET /metrics (Prometheus text format) and GET /healthz.
// No framework: two routes do not justify a dependency, and the trainer image stays small.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** Where to listen and what to serve. */
export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (read it back from MetricsServer.port). */
  readonly port: number;
  /** Interface to bind; default '0.0.0.0' so Prometheus can scrape the pod IP. */
  readonly host?: string;
  /** Registry whose metrics GET /metrics serves. */
  readonly registry: Registry;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** The port actually bound. */
  readonly port: number;
  /** Base URL, e.g. http://127.0.0.1:9400 (no trailing slash). */
  readonly url: string;
  /** Stops listening and ends open connections; resolves once closed (idempotent). */
  close(): Promise<void>;
  /** Resolves when the server has closed, whoever closed it. */
  readonly closed: Promise<void>;
}

/** Error raised when the metrics server cannot listen (port in use, bad host, …). */
export class MetricsServerError extends Error {
  /** The listen failure is in `cause`. */
  override readonly name = 'MetricsServerError';
}

/** Answers one request: /metrics, /healthz, 405 for other methods on them, 404 otherwise. */
async function handle(registry: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path !== '/metrics' && path !== '/healthz') {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
    return;
  }
  if (path === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : 'ok');
    return;
  }
  try {
    const body = await registry.metrics();
    res.writeHead(200, { 'Content-Type': registry.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

/** Starts serving `registry`; resolves once listening, rejects with MetricsServerError otherwise. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '0.0.0.0';
  const server = createServer((req, res) => {
    void handle(options.registry, req, res);
  });
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new MetricsServerError(`metrics server cannot listen on ${host}:${options.port}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const address: AddressInfo | string | null = server.address();
  if (address === null || typeof address === 'string') {
    server.close();
    throw new MetricsServerError(`metrics server bound to no TCP port (${String(address)})`);
  }
  const port = address.port;
  // An unspecified bind address is not something a client can dial; point the URL at loopback.
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${urlHost}:${port}`,
    closed,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive; do not let them hold shutdown up.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

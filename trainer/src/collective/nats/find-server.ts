/**
 * Finding a nats-server binary for the local launcher (`gmt-train --workers N`), in production code:
 * GMT_NATS_SERVER_BINARY, else the newest `nats-server-v*` in the binary cache that
 * `npm run setup:binaries` fills (test/harness/binaries.ts builds it there), else `nats-server` on PATH.
 * Nothing is built here.
 */
import { accessSync, constants, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { NatsServerError } from './server.js';

/** Variable naming a nats-server binary explicitly. */
export const NATS_SERVER_BINARY_ENV = 'GMT_NATS_SERVER_BINARY';

/** The cache root: $GMT_CACHE_DIR, else ~/.cache/gmt-operator (binaries live in its bin/). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['GMT_CACHE_DIR'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'gmt-operator');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Numeric parts of a version such as v2.12.1 (missing parts count as 0). */
function versionParts(v: string): number[] {
  return v
    .replace(/^v/, '')
    .split(/[.-]/)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : 0));
}

function compareVersions(a: string, b: string): number {
  const x = versionParts(a),
    y = versionParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The newest executable `nats-server-v*` in `dir`, if any. */
function newestCached(dir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const versions = names
    .filter((n) => /^nats-server-v\d/.test(n) && isExecutable(join(dir, n)))
    .map((n) => n.slice('nats-server-'.length))
    .sort(compareVersions);
  const newest = versions.at(-1);
  return newest === undefined ? undefined : join(dir, `nats-server-${newest}`);
}

/** The nats-server to run; throws NatsServerError naming every place it looked. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string {
  const override = env[NATS_SERVER_BINARY_ENV];
  if (override !== undefined && override !== '') {
    if (!isExecutable(override)) throw new NatsServerError(`${NATS_SERVER_BINARY_ENV}=${override} is not an executable file`);
    return override;
  }
  const binDir = join(cacheDir(env), 'bin');
  const cached = newestCached(binDir);
  if (cached !== undefined) return cached;
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'nats-server');
    if (isExecutable(candidate)) return candidate;
  }
  throw new NatsServerError(
    `nats-server not found: set ${NATS_SERVER_BINARY_ENV}, run \`npm run setup:binaries\` (fills ${binDir}), or put nats-server on PATH`,
  );
}

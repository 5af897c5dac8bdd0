// Locates, and builds when missing, the Go binaries the tests run: the Kubernetes control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), a matching kubectl, the node's
// kubelet and kube-proxy (same Kubernetes module), CoreDNS, helm, nats-server and Prometheus.
//
// Versions come from the pinned build-only Go modules under test/tools/ (one go.mod each), so
// go.mod is the single source of truth. Binaries are cached outside the work tree at
// `${GMT_CACHE_DIR:-$HOME/.cache/gmt-operator}/bin/<name>-<version>` and built only when missing;
// concurrent callers (ava workers, several terminals) serialise on a lock per tools module.
// A binary can be overridden with GMT_<NAME>_BINARY (e.g. GMT_NATS_SERVER_BINARY=/usr/bin/nats-server).
//
// This file is test infrastructure; production code never imports it (the launcher finds nats-server
// with trainer/src/collective/nats/find-server.ts, which shares cacheDir with this file).

import { spawn } from 'node:child_process';
import { access, constants, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../../trainer/src/collective/nats/find-server.js';
import { withDirLock } from '../../trainer/src/dir-lock.js';

/** Every binary this module can provide. */
export const BINARY_NAMES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'kubelet',
  'kube-proxy',
  'coredns',
  'gpu-device-plugin',
  'helm',
  'nats-server',
  'prometheus',
] as const;
export type BinaryName = (typeof BINARY_NAMES)[number];

/** A tools module under test/tools/. */
type ToolsModule = 'k8s' | 'coredns' | 'helm' | 'nats' | 'prometheus';

interface BinarySpec {
  readonly module: ToolsModule;
  /** Main package to build. */
  readonly pkg: string;
  /** Module whose version (from the tools go.mod) keys the cache. */
  readonly versionOf: string;
}

const SPECS: Readonly<Record<BinaryName, BinarySpec>> = {
  etcd: { module: 'k8s', pkg: 'go.etcd.io/etcd/server/v3', versionOf: 'go.etcd.io/etcd/server/v3' },
  'kube-apiserver': { module: 'k8s', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', versionOf: 'k8s.io/kubernetes' },
  'kube-controller-manager': {
    module: 'k8s',
    pkg: 'k8s.io/kubernetes/cmd/kube-controller-manager',
    versionOf: 'k8s.io/kubernetes',
  },
  'kube-scheduler': { module: 'k8s', pkg: 'k8s.io/kubernetes/cmd/kube-scheduler', versionOf: 'k8s.io/kubernetes' },
  kubectl: { module: 'k8s', pkg: 'k8s.io/kubernetes/cmd/kubectl', versionOf: 'k8s.io/kubernetes' },
  kubelet: { module: 'k8s', pkg: 'k8s.io/kubernetes/cmd/kubelet', versionOf: 'k8s.io/kubernetes' },
  'kube-proxy': { module: 'k8s', pkg: 'k8s.io/kubernetes/cmd/kube-proxy', versionOf: 'k8s.io/kubernetes' },
  // Test infrastructure in the k8s tools module (the kubelet's device-plugin API at the pinned version).
  'gpu-device-plugin': { module: 'k8s', pkg: 'gmt-operator.test/tools/k8s/gpu-device-plugin', versionOf: 'k8s.io/kubernetes' },
  // The tools module's own main package: upstream CoreDNS with the plugins the test cluster uses.
  coredns: { module: 'coredns', pkg: 'gmt-operator.test/tools/coredns', versionOf: 'github.com/coredns/coredns' },
  helm: { module: 'helm', pkg: 'helm.sh/helm/v3/cmd/helm', versionOf: 'helm.sh/helm/v3' },
  'nats-server': {
    module: 'nats',
    pkg: 'github.com/nats-io/nats-server/v2',
    versionOf: 'github.com/nats-io/nats-server/v2',
  },
  // Module versions v0.3xx.y are Prometheus 3.xx.y (see prometheusVersion).
  prometheus: { module: 'prometheus', pkg: 'github.com/prometheus/prometheus/cmd/prometheus', versionOf: 'github.com/prometheus/prometheus' },
};

/**
 * Go build tags per tools module. Prometheus: only the Kubernetes service discovery (the e2e test
 * discovers pods through the API server); the cloud SDKs of the other mechanisms stay out of the
 * build (prometheus/plugins/*.go: `!remove_all_sd || enable_<name>_sd`). Without `builtinassets`
 * the web UI is not embedded; the HTTP API is complete.
 */
const BUILD_TAGS: Readonly<Partial<Record<ToolsModule, readonly string[]>>> = {
  prometheus: ['remove_all_sd', 'enable_kubernetes_sd'],
};

/**
 * Cold-build durations measured on the 2-core build machine with an empty Go build cache
 * (k8s: 9m47s idle, 13m47s with tests running beside it; helm 2m29s; nats-server 19s; prometheus
 * 9m41s wall / 4m10s CPU under a load average of 10-13).
 */
const COLD_BUILD_ESTIMATE: Readonly<Record<ToolsModule, string>> = {
  k8s: '10-15 minutes',
  coredns: '2-4 minutes',
  helm: '2-3 minutes',
  nats: 'under a minute',
  prometheus: '3-10 minutes',
};

/** Raised when a binary cannot be found or built; `cause` carries the underlying failure. */
export class BinaryError extends Error {
  override name = 'BinaryError';
}

/** The repository root (the folder holding test/tools/k8s/go.mod), found from this file's location. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'test', 'tools', 'k8s', 'go.mod'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new BinaryError('cannot find the repository root (test/tools/k8s/go.mod) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

function toolsDir(module: ToolsModule): string {
  return join(repoRoot(), 'test', 'tools', module);
}

const goModCache = new Map<ToolsModule, string>();

async function readGoMod(module: ToolsModule): Promise<string> {
  const cached = goModCache.get(module);
  if (cached !== undefined) return cached;
  const text = await readFile(join(toolsDir(module), 'go.mod'), 'utf8');
  goModCache.set(module, text);
  return text;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The pinned version of `name`, read from its tools module's go.mod (e.g. "v1.37.2"). */
export async function binaryVersion(name: BinaryName): Promise<string> {
  const spec = SPECS[name];
  const goMod = await readGoMod(spec.module);
  // A require line: "<tab>module vX.Y.Z[ // indirect]" or "require module vX.Y.Z".
  const re = new RegExp(`^\\s*(?:require\\s+)?${escapeRegExp(spec.versionOf)}\\s+(v\\S+)`, 'm');
  const m = re.exec(goMod);
  if (m?.[1] === undefined) {
    throw new BinaryError(`test/tools/${spec.module}/go.mod does not require ${spec.versionOf}`);
  }
  return m[1];
}

/** Where the cached binary for `name` lives (it may not exist yet). */
export async function binaryPath(name: BinaryName): Promise<string> {
  return join(cacheDir(), 'bin', `${name}-${await binaryVersion(name)}`);
}

function overrideFor(name: BinaryName): string | undefined {
  const key = `GMT_${name.toUpperCase().replace(/-/g, '_')}_BINARY`;
  const v = process.env[key];
  return v !== undefined && v !== '' ? v : undefined;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Options for ensureBinary/ensureBinaries. */
export interface EnsureOptions {
  /** Where progress lines go; default: stderr. */
  readonly log?: (line: string) => void;
}

/**
 * Returns the path of `name`, building it (and the rest of its tools module) first when it is not
 * cached. Idempotent and safe to call concurrently from several processes.
 */
export async function ensureBinary(name: BinaryName, opts: EnsureOptions = {}): Promise<string> {
  const paths = await ensureBinaries([name], opts);
  return paths[name];
}

/** Like ensureBinary for several names; returns a map name → path. */
export async function ensureBinaries<N extends BinaryName>(names: readonly N[], opts: EnsureOptions = {}): Promise<Record<N, string>> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const result = {} as Record<N, string>;
  const missingByModule = new Map<ToolsModule, BinaryName[]>();
  for (const name of names) {
    const override = overrideFor(name);
    if (override !== undefined) {
      if (!(await isExecutable(override))) throw new BinaryError(`${name}: override ${override} is not an executable file`);
      result[name] = override;
      continue;
    }
    const path = await binaryPath(name);
    result[name] = path;
    if (!(await isExecutable(path))) {
      const module = SPECS[name].module;
      missingByModule.set(module, [...(missingByModule.get(module) ?? []), name]);
    }
  }
  for (const module of missingByModule.keys()) {
    await withLock(module, log, async () => {
      // Build every binary of the module at once: they share most packages, and a later call
      // for a sibling then finds it cached. Re-check after taking the lock: another process may
      // have finished the build while we waited.
      const all = BINARY_NAMES.filter((n) => SPECS[n].module === module && overrideFor(n) === undefined);
      const stillMissing: BinaryName[] = [];
      for (const n of all) if (!(await isExecutable(await binaryPath(n)))) stillMissing.push(n);
      if (stillMissing.length > 0) await buildModule(module, stillMissing, log);
    });
  }
  return result;
}

/** `go build -o dir/ pkg` names the binary after the last path element, skipping a /vN suffix. */
function goDefaultBinaryName(pkg: string): string {
  const parts = pkg.split('/');
  const last = parts.at(-1) ?? pkg;
  return /^v\d+$/.test(last) && parts.length > 1 ? (parts.at(-2) ?? last) : last;
}

/** -X flags that stamp the version a Go binary reports (see docs/testing.md for why this matters). */
async function ldflagsFor(module: ToolsModule): Promise<string> {
  const flags = ['-s', '-w'];
  if (module === 'k8s') {
    const v = await binaryVersion('kube-apiserver');
    const m = /^v(\d+)\.(\d+)\./.exec(v);
    if (m?.[1] === undefined || m[2] === undefined) throw new BinaryError(`unexpected Kubernetes version ${v}`);
    // Without these, /version says v0.0.0-master+$Format:%H$ and version-sniffing clients (helm's
    // kubeVersion checks) break.
    for (const p of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
      flags.push(`-X ${p}.gitVersion=${v}`, `-X ${p}.gitMajor=${m[1]}`, `-X ${p}.gitMinor=${m[2]}`);
      flags.push(`-X ${p}.gitTreeState=clean`, `-X ${p}.buildDate=1970-01-01T00:00:00Z`);
    }
  } else if (module === 'helm') {
    flags.push(`-X helm.sh/helm/v3/internal/version.version=${await binaryVersion('helm')}`);
    flags.push('-X helm.sh/helm/v3/internal/version.gitTreeState=clean');
  } else if (module === 'prometheus') {
    // What `prometheus --version` and the prometheus_build_info metric report.
    flags.push(`-X github.com/prometheus/common/version.Version=${prometheusVersion(await binaryVersion('prometheus'))}`);
  }
  return flags.join(' ');
}

/** The Prometheus release of a module version: v0.316.0 is Prometheus 3.16.0 (v0.<major*100+minor>.<patch>). */
function prometheusVersion(moduleVersion: string): string {
  const m = /^v0\.(\d+)\.(\d+)$/.exec(moduleVersion);
  if (m?.[1] === undefined || m[2] === undefined || Number(m[1]) < 100)
    throw new BinaryError(`unexpected Prometheus module version ${moduleVersion} (expected v0.<major*100+minor>.<patch>)`);
  const n = Number(m[1]);
  return `${Math.floor(n / 100)}.${n % 100}.${m[2]}`;
}

async function buildModule(module: ToolsModule, names: readonly BinaryName[], log: (line: string) => void): Promise<void> {
  const binDir = join(cacheDir(), 'bin');
  await mkdir(binDir, { recursive: true });
  const versions = await Promise.all(names.map(async (n) => `${n} ${await binaryVersion(n)}`));
  log(
    `gmt: building ${versions.join(', ')} from test/tools/${module} into ${binDir}; ` +
      `a cold build takes ${COLD_BUILD_ESTIMATE[module]} on 2 cores (later runs use the cache)`,
  );
  const tmp = join(binDir, `.build-${module}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const pkgs = names.map((n) => SPECS[n].pkg);
  const args = [
    'build',
    '-v',
    '-p',
    String(Math.min(availableParallelism(), 4)),
    '-trimpath',
    '-pgo=off',
    ...(BUILD_TAGS[module] !== undefined ? ['-tags', BUILD_TAGS[module].join(',')] : []),
    '-ldflags',
    await ldflagsFor(module),
    '-o',
    tmp + '/',
    ...pkgs,
  ];
  const started = Date.now();
  try {
    await runGo(args, toolsDir(module), log, started);
    for (const n of names) {
      const built = join(tmp, goDefaultBinaryName(SPECS[n].pkg));
      await rename(built, await binaryPath(n));
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  log(`gmt: built ${names.join(', ')} in ${formatDuration(Date.now() - started)}`);
}

/** Formats milliseconds as "4m 05s" / "12.3s". */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}

function runGo(args: readonly string[], cwd: string, log: (line: string) => void, started: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, {
      cwd,
      env: {
        ...process.env,
        CGO_ENABLED: '0',
        // The tools modules live inside this git repo; VCS stamping would need git and is noise.
        GOFLAGS: [process.env['GOFLAGS'] ?? '', '-buildvcs=false', '-mod=readonly'].join(' ').trim(),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let compiled = 0;
    const tail: string[] = [];
    let partial = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        // `go build -v` prints one package path per line; anything else is an error or download.
        if (/^[\w.\-/]+$/.test(line)) compiled++;
        else {
          tail.push(line);
          if (tail.length > 60) tail.shift();
        }
      }
    });
    const timer = setInterval(() => {
      log(`gmt: ... still building (${formatDuration(Date.now() - started)} elapsed, ${compiled} packages compiled)`);
    }, 60_000);
    timer.unref();
    child.on('error', (err) => {
      clearInterval(timer);
      reject(new BinaryError('cannot run `go` (Go >= 1.26 must be on PATH to build the test binaries)', { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      if (code === 0) resolve();
      else
        reject(new BinaryError(`go ${args.slice(0, 1).join(' ')} in ${cwd} failed (${signal ?? `exit ${String(code)}`}):\n${[...tail, partial].join('\n')}`));
    });
  });
}

/** Serialises builders of one tools module across processes (ava workers, several terminals). */
async function withLock<T>(module: ToolsModule, log: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  return withDirLock(
    join(cacheDir(), 'locks', `${module}.lock`),
    (owner) => log(`gmt: waiting for another process (pid ${owner ?? '?'}) that is building test/tools/${module}`),
    fn,
  );
}

// The Debian packages a real test node needs (container runtime, CNI plugins, netfilter tools,
// image builders). Installing them changes the machine system-wide, so it is a setup step that
// says what it does (`npm run setup:node`), never a side effect of a test: the harness only checks
// that they are there and fails with the command to run when they are not.

import { execFile, spawn } from 'node:child_process';

/** Package → why the node needs it. */
export const NODE_PACKAGES = {
  containerd: 'container runtime (CRI) the kubelet talks to',
  runc: 'OCI runtime containerd starts containers with',
  'containernetworking-plugins': 'CNI plugins (bridge, host-local, portmap, loopback) in /usr/lib/cni',
  iptables: 'kube-proxy Service rules and the harness’s pod egress guard',
  nftables: 'nft lists and removes the nftables tables iptables-nft and kube-proxy create',
  conntrack: 'kube-proxy clears stale UDP flows (Service DNS) with it',
  buildah: 'builds the repository’s Dockerfiles without a Docker daemon',
  mmdebstrap: 'makes the Debian base image root filesystem',
  gcc: 'compiles the pause container (pause.c from the Kubernetes module), statically',
  'libc6-dev': 'static libc for the pause binary',
} as const;
export type NodePackage = keyof typeof NODE_PACKAGES;

/** Raised when a package is missing or apt fails. */
export class NodePackageError extends Error {
  override name = 'NodePackageError';
}

/** The packages of NODE_PACKAGES that dpkg does not report as installed. */
export async function missingNodePackages(): Promise<NodePackage[]> {
  const names = Object.keys(NODE_PACKAGES) as NodePackage[];
  const status = await new Promise<string>((resolve) => {
    // dpkg-query exits 1 when some package is unknown, but still prints the known ones.
    execFile('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\n', ...names], (_err, stdout) => resolve(stdout));
  });
  const installed = new Set(
    status
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === 'ii')
      .map((f) => f[0]),
  );
  return names.filter((n) => !installed.has(n));
}

/** Throws a NodePackageError naming the missing packages and the setup command. */
export async function requireNodePackages(): Promise<void> {
  const missing = await missingNodePackages();
  if (missing.length > 0) {
    throw new NodePackageError(
      `the real test node needs Debian packages that are not installed: ${missing.join(', ')}; ` +
        'run `npm run setup:node` (as root: apt-get update && apt-get install) first',
    );
  }
}

function run(cmd: string, args: readonly string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    log(`gmt: $ ${cmd} ${args.join(' ')}`);
    const child = spawn(cmd, [...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    child.on('error', (err) => reject(new NodePackageError(`cannot run ${cmd}`, { cause: err })));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new NodePackageError(`${cmd} ${args.join(' ')} failed (exit ${String(code)})`))));
  });
}

/**
 * Installs the missing packages system-wide with apt-get (update first). Says so before it starts;
 * does nothing when all are installed.
 */
export async function installNodePackages(log: (line: string) => void): Promise<NodePackage[]> {
  const missing = await missingNodePackages();
  if (missing.length === 0) return [];
  log(`gmt: installing Debian packages SYSTEM-WIDE for the real test node: ${missing.join(', ')}`);
  for (const p of missing) log(`gmt:   ${p}: ${NODE_PACKAGES[p]}`);
  await run('apt-get', ['update'], log);
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], log);
  return missing;
}

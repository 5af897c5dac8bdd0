/**
 * `pvc://<claim>/<path>` sources of a GmtFineTune (model.source, dataset.train, dataset.eval): the
 * claims the worker pods mount read-only, and the in-container paths the trainer config names instead
 * (docs/architecture.md §4). A claim that is also the checkpoint claim is not mounted twice: its data
 * is read under the checkpoint mount.
 */
import type { GmtFineTuneSpec } from './spec.js';

/** Where worker containers see volumes (the children builders mount them here). */
export const WORKER_PATHS = {
  /** Mount of the ConfigMap; GMT_CONFIG points at CONFIG_KEY in it. */
  configDir: '/etc/gmt',
  /** Mount of the checkpoint volume; each job writes under `<mount>/<jobId>`. */
  checkpointMount: '/var/lib/gmt/checkpoints',
  /** Read-only mounts of the claims named by pvc:// sources: `<dir>/<claim>`. */
  claimsDir: '/var/lib/gmt/claims',
  /** Mount of the NATS credentials Secret. */
  natsCredsDir: '/var/run/secrets/gmt/nats',
  /** Writable scratch space (the root filesystem is read-only). */
  tmp: '/tmp',
} as const;

const PVC_SOURCE = /^pvc:\/\/([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\/(\S*)$/;

/** The claim and the path inside it of a `pvc://<claim>/<path>` source; undefined for other sources. */
export function parsePvcSource(source: string): { claim: string; path: string } | undefined {
  const m = PVC_SOURCE.exec(source);
  if (m === null) return undefined;
  return { claim: m[1] ?? '', path: m[2] ?? '' };
}

function sources(spec: GmtFineTuneSpec): string[] {
  return [spec.model.source, spec.dataset.train, ...(spec.dataset.eval !== undefined ? [spec.dataset.eval] : [])];
}

/** The checkpoint claim, when checkpoints go to one. */
function checkpointClaim(spec: GmtFineTuneSpec): string | undefined {
  return spec.checkpoint.volume.persistentVolumeClaim?.claimName;
}

/** Claims the workers mount read-only for pvc:// sources (sorted, each once; not the checkpoint claim). */
export function sourceClaims(spec: GmtFineTuneSpec): string[] {
  const ckpt = checkpointClaim(spec);
  const claims = new Set<string>();
  for (const s of sources(spec)) {
    const p = parsePvcSource(s);
    if (p !== undefined && p.claim !== ckpt) claims.add(p.claim);
  }
  return [...claims].sort();
}

/** Where the workers see `claim`'s root. */
export function claimMountPath(spec: GmtFineTuneSpec, claim: string): string {
  return claim === checkpointClaim(spec) ? WORKER_PATHS.checkpointMount : `${WORKER_PATHS.claimsDir}/${claim}`;
}

/** `source` as the trainer inside a worker sees it: pvc://<claim>/<path> → the mounted path; others unchanged. */
export function resolveSource(spec: GmtFineTuneSpec, source: string): string {
  const p = parsePvcSource(source);
  if (p === undefined) return source;
  const root = claimMountPath(spec, p.claim);
  return p.path === '' ? root : `${root}/${p.path}`;
}

/**
 * Deterministic names and labels of a GmtFineTune's children (STYLE: children have deterministic
 * names, so creating them is idempotent). Pod names carry the attempt, so the pods of the next gang
 * attempt never collide with the terminating pods of the previous one.
 */
import { createHash } from 'node:crypto';
import { APP_NAME, LABELS, MANAGED_BY, ROLES } from '../api/index.js';

/** The part of a GmtFineTune the names derive from. */
export interface JobIdentity {
  readonly metadata: { readonly name: string; readonly namespace?: string | undefined; readonly uid?: string | undefined };
}

/**
 * GMT_JOB_ID: `<namespace>-<name>-<uid[0:8]>`. DNS-safe and a single NATS subject token
 * (`[a-z0-9-]+`, the trainer's jobId rule), unique per object incarnation: a job deleted and
 * created again under the same name gets new subjects and a new checkpoint directory.
 */
export function computeJobId(job: JobIdentity): string {
  const uid = (job.metadata.uid ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 8);
  const parts = [job.metadata.namespace ?? 'default', job.metadata.name, ...(uid !== '' ? [uid] : [])];
  return parts.join('-');
}

/** Headless Service `<name>`: pods are `<name>-<rank>.<name>.<ns>.svc`. */
export function serviceName(jobName: string): string {
  return jobName;
}

/** ConfigMap `<name>-config` holding the trainer config JSON. */
export function configMapName(jobName: string): string {
  return `${jobName}-config`;
}

/** Worker pod `<name>-a<attempt>-r<rank>` (≤ 63 characters for names ≤ MAX_NAME_LENGTH). */
export function podName(jobName: string, attempt: number, rank: number): string {
  return `${jobName}-a${attempt}-r${rank}`;
}

/** Pod hostname `<name>-<rank>` (stable across attempts; with subdomain `<name>` it resolves via the Service). */
export function podHostname(jobName: string, rank: number): string {
  return `${jobName}-${rank}`;
}

/** Labels every child of `jobName` carries. */
export function childLabels(jobName: string, role: (typeof ROLES)[keyof typeof ROLES]): Record<string, string> {
  return { [LABELS.name]: APP_NAME, [LABELS.managedBy]: MANAGED_BY, [LABELS.job]: jobName, [LABELS.role]: role };
}

/** Label selector (string form) of every child the operator manages. */
export const CHILD_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.job}`;

/** Short content hash (16 hex) of a text, e.g. the trainer config. */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

// Small helpers for tests against a cluster: polling with a deadline, namespaces, pods, kubectl.

import { execFile } from 'node:child_process';
import { ApiException, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';

/** Raised when a waited-for condition does not hold in time; the message says what was last seen. */
export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs?: number; intervalMs?: number; describe?: () => Promise<string> } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = ` (last error: ${err instanceof Error ? err.message : String(err)})`;
    }
    if (Date.now() > deadline) {
      const state = opts.describe !== undefined ? `; last seen: ${await opts.describe().catch(String)}` : '';
      throw new WaitTimeoutError(`timed out waiting for ${what}${lastError}${state}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
}

/** True if `err` is an API error with one of `codes`. */
export function isApiError(err: unknown, ...codes: number[]): boolean {
  return err instanceof ApiException && codes.includes(err.code);
}

/** Creates a namespace named `<prefix>-<random>` and waits for its `default` ServiceAccount (pods need it). */
export async function createTestNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const ns = await core.createNamespace({ body: { metadata: { generateName: `${prefix}-`, labels: { 'gmt.dev/test': 'true' } } } });
  const name = ns.metadata?.name ?? '';
  await waitFor(`ServiceAccount ${name}/default`, async () => {
    try {
      return await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
    } catch (err) {
      if (isApiError(err, 404)) return undefined;
      throw err;
    }
  });
  return name;
}

/** Waits until the pod reaches one of `phases`; returns it. */
export async function waitForPodPhase(kc: KubeConfig, namespace: string, name: string, phases: readonly string[], timeoutMs = 120_000): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  let last: V1Pod | undefined;
  return waitFor(
    `pod ${namespace}/${name} to reach ${phases.join('|')}`,
    async () => {
      last = await core.readNamespacedPod({ name, namespace });
      return phases.includes(last.status?.phase ?? '') ? last : undefined;
    },
    {
      timeoutMs,
      describe: async () => JSON.stringify({ phase: last?.status?.phase, nodeName: last?.spec?.nodeName, containerStatuses: last?.status?.containerStatuses }),
    },
  );
}

/** Waits until the object read by `read` is gone (404). */
export async function waitForGone(what: string, read: () => Promise<unknown>, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `${what} to be deleted`,
    async () => {
      try {
        await read();
        return undefined;
      } catch (err) {
        if (isApiError(err, 404)) return true;
        throw err;
      }
    },
    { timeoutMs },
  );
}

/** Runs kubectl with KUBECONFIG set; resolves with stdout/stderr and the exit code (never rejects on exit code). */
export function runKubectl(
  kubectl: string,
  kubeconfigPath: string,
  args: readonly string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      kubectl,
      [...args],
      { env: { ...process.env, KUBECONFIG: kubeconfigPath }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an ExecFileException is an Error
          reject(err);
          return;
        }
        resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
      },
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

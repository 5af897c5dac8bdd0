// The cluster a test file runs against: by default a fresh local control plane plus a node agent
// (started once per ava worker, i.e. per test file); with GMT_E2E_KUBECONFIG set, an existing
// cluster (kind, a real one) that is used as it is and never torn down.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { KubeConfig } from '@kubernetes/client-node';
import { ensureBinary, formatDuration } from './binaries.js';
import { ControlPlane } from './control-plane.js';
import { NodeAgent } from '../node-agent/agent.js';

/** Image names the tests use; overridable so the same tests run on a real cluster. */
export interface TestImages {
  /** An image with a POSIX shell whose `command` runs as given (local: mapped to the host's sh). */
  readonly shell: string;
}

/** A cluster for tests. */
export interface TestCluster {
  /** Admin kubeconfig content and a file holding it (for kubectl/helm). */
  readonly kubeconfig: string;
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  /** The local control plane, or undefined when testing an existing cluster. */
  readonly controlPlane: ControlPlane | undefined;
  /** The local node agent, or undefined when testing an existing cluster. */
  readonly agent: NodeAgent | undefined;
  readonly images: TestImages;
  /** kubectl to use: the version-matched build from the binary cache (GMT_KUBECTL_BINARY overrides). */
  readonly kubectl: string;
  close(): Promise<void>;
}

/** Options for startTestCluster. */
export interface TestClusterOptions {
  /** Allow GMT_E2E_KUBECONFIG to select an existing cluster (e2e tier). Default false. */
  readonly allowExisting?: boolean;
  /** Start the node agent. Default true. */
  readonly nodeAgent?: boolean;
  readonly log?: (line: string) => void;
}

function imagesFromEnv(): TestImages {
  return { shell: process.env['GMT_E2E_SHELL_IMAGE'] ?? 'gmt-test/shell' };
}

/** Starts (or attaches to) a cluster as described in the file comment. */
export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[cluster] ${line}\n`));
  const kubectl = await ensureBinary('kubectl', { log });
  const existing = process.env['GMT_E2E_KUBECONFIG'];
  if (opts.allowExisting === true && existing !== undefined && existing !== '') {
    const kubeconfig = await readFile(existing, 'utf8');
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfig);
    log(`using existing cluster ${kc.getCurrentCluster()?.server ?? '?'} from GMT_E2E_KUBECONFIG`);
    return {
      kubeconfig,
      kubeconfigPath: existing,
      kc,
      controlPlane: undefined,
      agent: undefined,
      images: imagesFromEnv(),
      kubectl,
      close: async () => {},
    };
  }
  const cp = await ControlPlane.start({ log });
  let agent: NodeAgent | undefined;
  try {
    if (opts.nodeAgent ?? true) {
      const logDir = join(cp.dir, 'pods');
      await mkdir(logDir, { recursive: true });
      agent = new NodeAgent({ kubeconfig: cp.kubeconfig, logDir, log });
      await agent.start();
    }
  } catch (err) {
    await cp.close();
    throw err;
  }
  log(`control plane started in ${formatDuration(cp.startMs)}; KUBECONFIG=${cp.kubeconfigPath}`);
  const kc = new KubeConfig();
  kc.loadFromString(cp.kubeconfig);
  return {
    kubeconfig: cp.kubeconfig,
    kubeconfigPath: cp.kubeconfigPath,
    kc,
    controlPlane: cp,
    agent,
    images: { shell: 'gmt-test/shell' },
    kubectl,
    close: async () => {
      await agent?.close();
      await cp.close();
    },
  };
}

/**
 * ava shared setup: starts one cluster for the test file in `test.before` and stops it in
 * `test.after.always`. Returns a getter for use inside tests.
 */
export function useTestCluster(test: TestFn, opts: TestClusterOptions = {}): () => TestCluster {
  let cluster: TestCluster | undefined;
  test.before(async () => {
    cluster = await startTestCluster(opts);
  });
  test.after.always(async () => {
    await cluster?.close();
  });
  return () => {
    if (cluster === undefined) throw new Error('test cluster not started (did test.before fail?)');
    return cluster;
  };
}

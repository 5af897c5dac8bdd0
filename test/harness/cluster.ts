// The clusters tests run against:
// - startTestCluster / useTestCluster: a fresh local control plane and no node (integration tests
//   that only need an API server, the operator bench). Started once per ava worker (test file).
// - e2eCluster / useE2eCluster: the cluster named by GMT_E2E_KUBECONFIG, with pods on a real node.
//   `npm run test:e2e` (scripts/e2e.ts) starts one real node (test/harness/real-node/), loads the
//   images and sets it; a user can set it to any cluster that has the images (kind, `npm run
//   cluster:up` + `npm run images`). It is used as it is and never torn down: files isolate
//   themselves in namespaces of their own.

import { readFile } from 'node:fs/promises';
import type { TestFn } from 'ava';
import { KubeConfig } from '@kubernetes/client-node';
import { ensureBinary, formatDuration } from './binaries.js';
import { ControlPlane } from './control-plane.js';
import { NATS_IMAGE, PROJECT_IMAGES } from './real-node/build-images.js';
import { NODE_IMAGES } from './real-node/images.js';
import { NODE_IP } from './real-node/network.js';

/** A local control plane without any node. */
export interface TestCluster {
  /** Admin kubeconfig content and a file holding it (for kubectl/helm). */
  readonly kubeconfig: string;
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  readonly controlPlane: ControlPlane;
  /** kubectl to use: the version-matched build from the binary cache (GMT_KUBECTL_BINARY overrides). */
  readonly kubectl: string;
  close(): Promise<void>;
}

/** Options for startTestCluster. */
export interface TestClusterOptions {
  readonly log?: (line: string) => void;
}

/** Starts a local control plane (no node: pods stay Pending). */
export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[cluster] ${line}\n`));
  const kubectl = await ensureBinary('kubectl', { log });
  const cp = await ControlPlane.start({ log });
  log(`control plane started in ${formatDuration(cp.startMs)}; KUBECONFIG=${cp.kubeconfigPath}`);
  const kc = new KubeConfig();
  kc.loadFromString(cp.kubeconfig);
  return { kubeconfig: cp.kubeconfig, kubeconfigPath: cp.kubeconfigPath, kc, controlPlane: cp, kubectl, close: () => cp.close() };
}

/**
 * ava shared setup: starts one control plane for the test file in `test.before` and stops it in
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

/** Images the e2e tests run; each overridable for a cluster of another kind (they must be loaded there). */
export interface E2eImages {
  /** An image with a POSIX shell (`sh -c`); GMT_E2E_SHELL_IMAGE, e.g. busybox:1.36 on kind. */
  readonly shell: string;
  /** The CPU trainer image built from images/trainer.Dockerfile (GMT_E2E_TRAINER_IMAGE). */
  readonly trainer: string;
  /** The operator image built from images/operator.Dockerfile (GMT_E2E_OPERATOR_IMAGE). */
  readonly operator: string;
  /** The NATS image for the chart's in-cluster NATS (GMT_E2E_NATS_IMAGE). */
  readonly nats: string;
}

/** The cluster of the e2e tier (GMT_E2E_KUBECONFIG). */
export interface E2eCluster {
  readonly kubeconfig: string;
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  readonly kubectl: string;
  readonly images: E2eImages;
  /**
   * An address of this machine that pods can reach, for servers the tests run on the host (the
   * in-process operator's nats-server): the real node's NODE_IP, or GMT_E2E_HOST_ADDRESS.
   */
  readonly hostAddress: string;
}

/** Environment variables the e2e tier reads (set by scripts/e2e.ts or by hand). */
export const E2E_ENV = {
  kubeconfig: 'GMT_E2E_KUBECONFIG',
  hostAddress: 'GMT_E2E_HOST_ADDRESS',
  shellImage: 'GMT_E2E_SHELL_IMAGE',
  trainerImage: 'GMT_E2E_TRAINER_IMAGE',
  operatorImage: 'GMT_E2E_OPERATOR_IMAGE',
  natsImage: 'GMT_E2E_NATS_IMAGE',
} as const;

/** What the e2e tier reads from the environment (pure); throws a one-line message saying how to get a cluster when there is none. */
export function e2eSettings(env: NodeJS.ProcessEnv): { kubeconfigPath: string; images: E2eImages; hostAddress: string } {
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v !== undefined && v !== '' ? v : undefined;
  };
  const kubeconfigPath = get(E2E_ENV.kubeconfig);
  if (kubeconfigPath === undefined) {
    throw new Error(
      `${E2E_ENV.kubeconfig} is not set: run the e2e tier with \`npm run test:e2e\` (it starts a real node), or set ${E2E_ENV.kubeconfig} to a cluster that has the images (e.g. the kubeconfig \`npm run cluster:up\` prints, after \`npm run images\`)`,
    );
  }
  return {
    kubeconfigPath,
    images: {
      shell: get(E2E_ENV.shellImage) ?? NODE_IMAGES.debian,
      trainer: get(E2E_ENV.trainerImage) ?? PROJECT_IMAGES.trainer.ref,
      operator: get(E2E_ENV.operatorImage) ?? PROJECT_IMAGES.operator.ref,
      nats: get(E2E_ENV.natsImage) ?? NATS_IMAGE,
    },
    hostAddress: get(E2E_ENV.hostAddress) ?? NODE_IP,
  };
}

/** The e2e cluster from the environment (e2eSettings). */
export async function e2eCluster(log: (line: string) => void = (line) => process.stderr.write(`[e2e] ${line}\n`)): Promise<E2eCluster> {
  const settings = e2eSettings(process.env);
  const path = settings.kubeconfigPath;
  const kubeconfig = await readFile(path, 'utf8');
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  log(`using the cluster at ${kc.getCurrentCluster()?.server ?? '?'} (${E2E_ENV.kubeconfig}=${path})`);
  return {
    kubeconfig,
    kubeconfigPath: path,
    kc,
    kubectl: await ensureBinary('kubectl', { log }),
    images: settings.images,
    hostAddress: settings.hostAddress,
  };
}

/** ava shared setup: reads the e2e cluster in `test.before`; returns a getter for use inside tests. */
export function useE2eCluster(test: TestFn): () => E2eCluster {
  let cluster: E2eCluster | undefined;
  test.before(async () => {
    cluster = await e2eCluster();
  });
  return () => {
    if (cluster === undefined) throw new Error('e2e cluster not read (did test.before fail?)');
    return cluster;
  };
}

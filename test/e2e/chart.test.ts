// charts/gmt-operator on the test control plane: `helm install` brings up the operator (the node
// agent runs the image `gmt-operator:dev` as `node dist/operator/src/main.js --kubeconfig <admin>`
// plus the chart's args — in-cluster config is not possible for a host process), a GmtFineTune
// trains to Succeeded against the test's nats-server (chart: external NATS URL), `helm upgrade`
// changes the CRD in the cluster, and `helm uninstall` removes the operator and its RBAC but keeps
// the CRD and the user's GmtFineTunes.

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiextensionsV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { CRD_NAME } from '../../operator/src/api/index.js';
import { ensureBinary } from '../harness/binaries.js';
import { createTestNamespace, isApiError, waitFor, waitForGone } from '../harness/k8s-helpers.js';
import { freePort } from '../harness/processes.js';
import { repoPath } from '../helpers/repo.js';
import { useOperatorFixture } from './operator-fixture.js';

const fx = useOperatorFixture(test, 'chart');
const KUBECONFIG_COPY = join(fx.root, 'admin.kubeconfig');
// The fixture mapped the trainer image; add the operator image (read when the node agent starts).
process.env['GMT_NODE_AGENT_IMAGES'] = JSON.stringify({
  ...(JSON.parse(process.env['GMT_NODE_AGENT_IMAGES'] ?? '{}') as object),
  'gmt-operator': { entrypoint: [process.execPath, repoPath('dist/operator/src/main.js'), '--kubeconfig', KUBECONFIG_COPY] },
});

const RELEASE = 'gmt';
const NS = 'gmt-system';
const FULLNAME = 'gmt-gmt-operator';
let metricsPort = 0;

async function helm(args: readonly string[]): Promise<string> {
  const bin = await ensureBinary('helm');
  const home = join(fx.root, 'helm-home');
  await mkdir(home, { recursive: true });
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      [...args],
      {
        env: {
          ...process.env,
          KUBECONFIG: fx.cluster().kubeconfigPath,
          HELM_CACHE_HOME: join(home, 'cache'),
          HELM_CONFIG_HOME: join(home, 'config'),
          HELM_DATA_HOME: join(home, 'data'),
        },
        timeout: 180_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`helm ${args.join(' ')} failed: ${err.message}\n${stderr}`))),
    );
  });
}

const values = (): string[] => [
  '--set',
  'image.repository=gmt-operator,image.tag=dev,replicas=1,trainerMetricsPort=0',
  '--set',
  `metrics.port=${metricsPort}`,
  '--set',
  `nats.inCluster.enabled=false,nats.external.url=${fx.natsUrl()}`,
];

test.serial('chart e2e - helm install: Deployment → ReplicaSet → Pod Running and Ready, leader Lease taken', async (t) => {
  // ava runs before hooks concurrently, so this waits for the cluster here, not in a hook.
  await writeFile(KUBECONFIG_COPY, fx.cluster().kubeconfig, { mode: 0o600 });
  metricsPort = await freePort();
  const out = await helm(['install', RELEASE, repoPath('charts/gmt-operator'), '-n', NS, '--create-namespace', ...values(), '--wait', '--timeout', '120s']);
  t.regex(out, /STATUS: deployed/);
  const { kc } = fx.cluster();
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const dep = await waitFor(
    'operator Deployment available',
    async () => {
      const d = await apps.readNamespacedDeployment({ name: FULLNAME, namespace: NS });
      return d.status?.readyReplicas === 1 && d.status.availableReplicas === 1 ? d : undefined;
    },
    { timeoutMs: 60_000 },
  );
  const rss = (await apps.listNamespacedReplicaSet({ namespace: NS })).items.filter((r) =>
    r.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.uid === dep.metadata?.uid),
  );
  t.is(rss.length, 1);
  const pods = (await core.listNamespacedPod({ namespace: NS })).items.filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === rss[0]?.metadata?.uid));
  t.is(pods.length, 1);
  t.is(pods[0]?.status?.phase, 'Running');
  t.true(pods[0]?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  t.is(pods[0]?.spec?.serviceAccountName, FULLNAME);
  // The operator really serves its probes (the node agent does not run them) and leads.
  const ready = await waitFor(
    'operator /readyz',
    async () => {
      const r = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
      return r?.ok === true ? r.status : undefined;
    },
    { timeoutMs: 30_000 },
  );
  t.is(ready, 200);
  t.is((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status, 200);
  const lease = await waitFor(
    'leader Lease held',
    async () => {
      const l = await kc
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ name: 'gmt-operator-leader', namespace: NS })
        .catch(() => undefined);
      return (l?.spec?.holderIdentity ?? '') !== '' ? l : undefined;
    },
    { timeoutMs: 30_000 },
  );
  t.truthy(lease.spec?.holderIdentity);
  const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: CRD_NAME });
  t.is(crd.metadata?.annotations?.['helm.sh/resource-policy'], 'keep');
});

test.serial('chart e2e - the operator installed by the chart runs a tiny GmtFineTune to Succeeded', async (t) => {
  const ns = await createTestNamespace(fx.cluster().kc, 'chart');
  await fx.create(ns, fx.tiny('tiny'));
  const done = await fx.waitForJob(t, ns, 'tiny', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed', 150_000);
  t.is(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
  t.is(done.status?.step, 12);
  (globalThis as { chartJobNs?: string }).chartJobNs = ns;
});

test.serial('chart e2e - helm upgrade updates the CRD in the cluster', async (t) => {
  await helm([
    'upgrade',
    RELEASE,
    repoPath('charts/gmt-operator'),
    '-n',
    NS,
    ...values(),
    '--set-string',
    'crds.annotations.gmt\\.dev/revision=2',
    '--wait',
    '--timeout',
    '120s',
  ]);
  const crd = await fx.cluster().kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: CRD_NAME });
  t.is(crd.metadata?.annotations?.['gmt.dev/revision'], '2');
  t.is(crd.metadata?.annotations?.['helm.sh/resource-policy'], 'keep');
});

test.serial('chart e2e - helm uninstall removes the operator and its RBAC, keeps the CRD and the GmtFineTunes', async (t) => {
  const out = await helm(['uninstall', RELEASE, '-n', NS, '--wait', '--timeout', '60s']);
  t.regex(out, /kept due to the resource policy/);
  const { kc } = fx.cluster();
  const apps = kc.makeApiClient(AppsV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await waitForGone('operator Deployment', () => apps.readNamespacedDeployment({ name: FULLNAME, namespace: NS }));
  await waitForGone('ClusterRole', () => rbac.readClusterRole({ name: FULLNAME }));
  await waitForGone('ClusterRoleBinding', () => rbac.readClusterRoleBinding({ name: FULLNAME }));
  await waitForGone('leader-election Role', () => rbac.readNamespacedRole({ name: `${FULLNAME}-leader-election`, namespace: NS }));
  await waitForGone('ServiceAccount', () => kc.makeApiClient(CoreV1Api).readNamespacedServiceAccount({ name: FULLNAME, namespace: NS }));
  const crd = await kc
    .makeApiClient(ApiextensionsV1Api)
    .readCustomResourceDefinition({ name: CRD_NAME })
    .catch((err: unknown) => {
      if (isApiError(err, 404)) return undefined;
      throw err;
    });
  t.truthy(crd, 'the CRD is kept');
  const ns = (globalThis as { chartJobNs?: string }).chartJobNs;
  t.truthy(ns);
  t.is((await fx.get(ns ?? '', 'tiny')).status?.phase, 'Succeeded', 'the GmtFineTune is kept');
});

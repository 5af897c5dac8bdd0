// charts/gmt-operator on the e2e cluster (a real node): `helm install` with the operator image built
// from images/operator.Dockerfile brings up the operator in its container (in-cluster config, the
// chart's ServiceAccount and RBAC, probes run by the kubelet), watching one namespace of this file; a
// GmtFineTune there trains to Succeeded against the fixture's nats-server on the host (chart:
// external NATS URL), `helm upgrade` changes the CRD in the cluster, and `helm uninstall` removes the
// operator and its RBAC but keeps the CRD and the user's GmtFineTunes.
//
// The CRD is shared with the other e2e files (they apply it with kubectl): `--take-ownership` lets
// the release adopt it whichever came first.

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiextensionsV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { CRD_NAME } from '../../operator/src/api/index.js';
import { ensureBinary } from '../harness/binaries.js';
import { isApiError, runKubectl, waitFor, waitForGone } from '../harness/k8s-helpers.js';
import { repoPath } from '../helpers/repo.js';
import { useOperatorFixture } from './operator-fixture.js';

const fx = useOperatorFixture(test, 'chart');

const RELEASE = 'gmt';
const FULLNAME = 'gmt-gmt-operator';
/** The release namespace and the namespace the operator watches (both this file's). */
let NS = '';
let jobNs = '';
const METRICS_PORT = 8080;

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
        timeout: 300_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`helm ${args.join(' ')} failed: ${err.message}\n${stderr}`))),
    );
  });
}

const values = (): string[] => {
  const [repository, tag] = fx.cluster().images.operator.split(/:(?=[^:]+$)/);
  return [
    '--set',
    `image.repository=${repository ?? ''},image.tag=${tag ?? ''},image.pullPolicy=IfNotPresent,replicas=1,trainerMetricsPort=0`,
    '--set',
    `metrics.port=${METRICS_PORT}`,
    '--set',
    `watchNamespaces={${jobNs}}`,
    '--set',
    `nats.inCluster.enabled=false,nats.external.url=${fx.natsUrl()}`,
    '--take-ownership',
  ];
};

/** GET `path` of the operator pod's metrics server through the API server's pod proxy. */
async function podGet(pod: string, path: string): Promise<{ code: number; body: string }> {
  const { kubectl, kubeconfigPath } = fx.cluster();
  const r = await runKubectl(kubectl, kubeconfigPath, ['get', '--raw', `/api/v1/namespaces/${NS}/pods/${pod}:${METRICS_PORT}/proxy${path}`]);
  return { code: r.code, body: r.code === 0 ? r.stdout : r.stderr };
}

test.serial('chart e2e - helm install: Deployment → ReplicaSet → Pod Running and Ready, leader Lease taken', async (t) => {
  NS = await fx.namespace('chart-sys');
  jobNs = await fx.namespace('chart');
  const out = await helm(['install', RELEASE, repoPath('charts/gmt-operator'), '-n', NS, ...values(), '--wait', '--timeout', '240s']);
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
  // Ready by the kubelet's probes; and the operator really serves them (through the pod proxy).
  const podName = pods[0]?.metadata?.name ?? '';
  const ready = await waitFor(
    'operator /readyz',
    async () => {
      const r = await podGet(podName, '/readyz');
      return r.code === 0 ? r : undefined;
    },
    { timeoutMs: 30_000 },
  );
  t.is(ready.code, 0, ready.body);
  t.is((await podGet(podName, '/healthz')).code, 0);
  t.regex((await podGet(podName, '/metrics')).body, /controller_runtime_reconcile_total/);
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
  await fx.create(jobNs, fx.tiny('tiny'));
  const done = await fx.waitForJob(t, jobNs, 'tiny', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed');
  t.is(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
  t.is(done.status?.step, 12);
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
    '240s',
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
  await waitForGone('RoleBinding in the watched namespace', () => rbac.readNamespacedRoleBinding({ name: FULLNAME, namespace: jobNs }));
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
  t.is((await fx.get(jobNs, 'tiny')).status?.phase, 'Succeeded', 'the GmtFineTune is kept');
});

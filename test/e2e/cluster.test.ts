// End-to-end checks of the cluster the operator will run on: the e2e cluster (GMT_E2E_KUBECONFIG:
// the real node `npm run test:e2e` starts, or any cluster, with GMT_E2E_SHELL_IMAGE, e.g.
// busybox:1.36 on kind). Everything here goes through the Kubernetes API or kubectl only.

import test from 'ava';
import { ApiException, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type V1CustomResourceDefinition, type V1Pod } from '@kubernetes/client-node';
import { useE2eCluster } from '../harness/cluster.js';
import { createTestNamespace, runKubectl, waitFor, waitForGone, waitForPodPhase } from '../harness/k8s-helpers.js';

const cluster = useE2eCluster(test);
const namespaces: string[] = [];

async function namespace(prefix: string): Promise<string> {
  const ns = await createTestNamespace(cluster().kc, prefix);
  namespaces.push(ns);
  return ns;
}

test.after.always(async () => {
  // The cluster outlives the file (and may be the user's).
  const c = (() => {
    try {
      return cluster();
    } catch {
      return undefined;
    }
  })();
  if (c === undefined) return;
  const core = c.kc.makeApiClient(CoreV1Api);
  await Promise.all(namespaces.map((name) => core.deleteNamespace({ name }).catch(() => undefined)));
});

function shellPod(name: string, script: string): V1Pod {
  return {
    metadata: { name },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      containers: [{ name: 'main', image: cluster().images.shell, imagePullPolicy: 'IfNotPresent', command: ['sh', '-c', script] }],
    },
  };
}

test('namespace - is created and becomes Active', async (t) => {
  const core = cluster().kc.makeApiClient(CoreV1Api);
  const name = await namespace('e2e-ns');
  const ns = await core.readNamespace({ name });
  t.is(ns.status?.phase, 'Active');
});

const CRD_GROUP = 'e2e.gmt.dev';
const crd: V1CustomResourceDefinition = {
  metadata: { name: `widgets.${CRD_GROUP}` },
  spec: {
    group: CRD_GROUP,
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['replicas'],
                properties: { replicas: { type: 'integer', minimum: 1, maximum: 8 }, mode: { type: 'string', _enum: ['fast', 'slow'] } },
              },
            },
          },
        },
      },
    ],
  },
};

test('crd - OpenAPI validation accepts a good object and rejects a bad one', async (t) => {
  const c = cluster();
  const ext = c.kc.makeApiClient(ApiextensionsV1Api);
  try {
    await ext.createCustomResourceDefinition({ body: crd });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 409)) throw err;
  }
  await waitFor('CRD to be Established', async () => {
    const got = await ext.readCustomResourceDefinition({ name: crd.metadata?.name ?? '' });
    return got.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') === true ? true : undefined;
  });
  const ns = await namespace('e2e-crd');
  const objects = c.kc.makeApiClient(CustomObjectsApi);
  const create = (name: string, spec: Record<string, unknown>): Promise<unknown> =>
    objects.createNamespacedCustomObject({
      group: CRD_GROUP,
      version: 'v1',
      namespace: ns,
      plural: 'widgets',
      body: { apiVersion: `${CRD_GROUP}/v1`, kind: 'Widget', metadata: { name }, spec },
    });
  // The CRD's REST endpoint can lag "Established" by a moment on a busy apiserver.
  await waitFor('a valid Widget to be accepted', async () => (await create('good', { replicas: 2, mode: 'fast' })) ?? true);
  const err = await t.throwsAsync(create('bad', { replicas: 0, mode: 'sideways' }));
  t.true(err instanceof ApiException, String(err));
  t.is((err as ApiException<unknown>).code, 422);
  const body = JSON.stringify((err as ApiException<unknown>).body);
  t.regex(body, /spec\.replicas/);
  t.regex(body, /spec\.mode/);
});

test('pod - is bound by the scheduler and run to Succeeded with exit code 0', async (t) => {
  const c = cluster();
  const core = c.kc.makeApiClient(CoreV1Api);
  const ns = await namespace('e2e-pod-ok');
  await core.createNamespacedPod({ namespace: ns, body: shellPod('ok', 'echo hello from $HOSTNAME; exit 0') });
  const pod = await waitForPodPhase(c.kc, ns, 'ok', ['Succeeded', 'Failed']);
  t.is(pod.status?.phase, 'Succeeded');
  t.truthy(pod.spec?.nodeName, 'bound to a node by kube-scheduler');
  t.true(pod.status?.conditions?.some((x) => x.type === 'PodScheduled' && x.status === 'True'));
  t.is(pod.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
  // A real container ran: its output is the container log, served by the kubelet.
  t.regex(await core.readNamespacedPodLog({ namespace: ns, name: 'ok' }), /^hello from ok$/m);
});

test('pod - fails with the exit code of its container', async (t) => {
  const c = cluster();
  const core = c.kc.makeApiClient(CoreV1Api);
  const ns = await namespace('e2e-pod-fail');
  await core.createNamespacedPod({ namespace: ns, body: shellPod('fail', 'echo failing >&2; exit 3') });
  const pod = await waitForPodPhase(c.kc, ns, 'fail', ['Succeeded', 'Failed']);
  t.is(pod.status?.phase, 'Failed');
  t.is(pod.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 3);
  t.is(pod.status?.containerStatuses?.[0]?.restartCount, 0);
});

test('garbage collection - deleting an owner removes its dependents', async (t) => {
  const c = cluster();
  const core = c.kc.makeApiClient(CoreV1Api);
  const ns = await namespace('e2e-gc');
  const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' }, data: { role: 'owner' } } });
  const ownerRef = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' };
  for (const name of ['dep-a', 'dep-b']) {
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, ownerReferences: [ownerRef] }, data: {} } });
  }
  const orphan = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'unrelated' }, data: {} } });
  await core.deleteNamespacedConfigMap({ name: 'owner', namespace: ns, propagationPolicy: 'Background' });
  for (const name of ['dep-a', 'dep-b']) {
    await waitForGone(`ConfigMap ${ns}/${name}`, () => core.readNamespacedConfigMap({ name, namespace: ns }));
  }
  const still = await core.readNamespacedConfigMap({ name: 'unrelated', namespace: ns });
  t.is(still.metadata?.uid, orphan.metadata?.uid);
});

test('kubectl - works against the cluster as a user would use it', async (t) => {
  const c = cluster();
  const kubectl = (args: string[], stdin?: string) => runKubectl(c.kubectl, c.kubeconfigPath, args, stdin);
  const nodes = await kubectl(['get', 'nodes', '-o', 'name']);
  t.is(nodes.code, 0, nodes.stderr);
  t.regex(nodes.stdout, /^node\//m);
  const ns = await namespace('e2e-kubectl');
  const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-kubectl', namespace: ns }, data: { k: 'v' } });
  const applied = await kubectl(['apply', '-f', '-'], manifest);
  t.is(applied.code, 0, applied.stderr);
  t.regex(applied.stdout, /configmap\/from-kubectl (created|configured)/);
  const got = await kubectl(['get', 'configmap', 'from-kubectl', '-n', ns, '-o', 'jsonpath={.data.k}']);
  t.is(got.stdout, 'v');
  const bad = await kubectl(['get', 'configmap', 'does-not-exist', '-n', ns]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /NotFound|not found/);
});

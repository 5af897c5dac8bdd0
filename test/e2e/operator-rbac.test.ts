/**
 * The RBAC manifests in operator/rbac/ are least-privilege and sufficient: the API server's own RBAC
 * authorizer (the test control plane runs --authorization-mode=RBAC) allows exactly what the
 * operator needs, denies the rest, and the operator authenticated as its ServiceAccount (a real
 * token from the TokenRequest API) runs a job to Succeeded with leader election on the e2e cluster.
 * The manifests are removed after the file (the cluster may outlive it).
 */
import test from 'ava';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { isApiError, runKubectl } from '../harness/k8s-helpers.js';
import { repoPath } from '../helpers/repo.js';
import { useOperatorFixture } from './operator-fixture.js';

const fx = useOperatorFixture(test, 'rbac');
const SA = 'system:serviceaccount:gmt-system:gmt-operator';

test.after.always(async () => {
  const c = (() => {
    try {
      return fx.cluster();
    } catch {
      return undefined;
    }
  })();
  if (c !== undefined) await runKubectl(c.kubectl, c.kubeconfigPath, ['delete', '--ignore-not-found', '-f', repoPath('operator/rbac')]);
});

async function canI(args: readonly string[]): Promise<boolean> {
  const { kubectl, kubeconfigPath } = fx.cluster();
  const r = await runKubectl(kubectl, kubeconfigPath, ['auth', 'can-i', ...args, `--as=${SA}`]);
  return r.stdout.trim() === 'yes';
}

test.serial('rbac - the operator ServiceAccount may do exactly what the operator needs', async (t) => {
  await fx.installCrd();
  const { kc, kubectl, kubeconfigPath } = fx.cluster();
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: 'gmt-system' } } })
    .catch((e: unknown) => {
      if (!isApiError(e, 409)) throw e;
    });
  const applied = await runKubectl(kubectl, kubeconfigPath, ['apply', '-f', repoPath('operator/rbac')]);
  t.is(applied.code, 0, applied.stderr);
  const allowed: string[][] = [
    ['list', 'gmtfinetunes.gmt.dev', '-A'],
    ['watch', 'gmtfinetunes.gmt.dev', '-A'],
    ['delete', 'gmtfinetunes.gmt.dev', '-n', 'default'],
    ['update', 'gmtfinetunes.gmt.dev', '--subresource=status', '-n', 'default'],
    ['update', 'gmtfinetunes.gmt.dev', '--subresource=finalizers', '-n', 'default'],
    ['create', 'pods', '-n', 'default'],
    ['delete', 'pods', '-n', 'default'],
    ['patch', 'services', '-n', 'default'],
    ['list', 'configmaps', '-A'],
    ['create', 'events', '-n', 'default'],
    ['create', 'leases.coordination.k8s.io', '-n', 'gmt-system'],
    ['update', 'leases.coordination.k8s.io', '-n', 'gmt-system'],
    // Per-attempt NATS credentials are written, never read (docs/security.md).
    ['create', 'secrets', '-n', 'default'],
    ['patch', 'secrets', '-n', 'default'],
    ['delete', 'secrets', '-n', 'default'],
    ['get', 'secrets/gmt-operator-nats-keys', '-n', 'gmt-system'],
    ['patch', 'secrets/gmt-operator-nats-server', '-n', 'gmt-system'],
  ];
  const denied: string[][] = [
    ['get', 'secrets', '-n', 'default'],
    ['list', 'secrets', '-A'],
    ['watch', 'secrets', '-A'],
    ['get', 'secrets', '-n', 'gmt-system'],
    ['get', 'secrets/other', '-n', 'gmt-system'],
    ['create', 'gmtfinetunes.gmt.dev', '-n', 'default'],
    ['update', 'gmtfinetunes.gmt.dev', '-n', 'default'],
    ['create', 'deployments.apps', '-n', 'default'],
    ['list', 'nodes'],
    ['create', 'leases.coordination.k8s.io', '-n', 'default'],
    ['delete', 'namespaces'],
    ['create', 'pods', '--subresource=exec', '-n', 'default'],
    ['create', 'customresourcedefinitions.apiextensions.k8s.io'],
  ];
  for (const a of allowed) t.true(await canI(a), `should be allowed: ${a.join(' ')}`);
  for (const d of denied) t.false(await canI(d), `should be denied: ${d.join(' ')}`);
});

test.serial('rbac - the operator authenticated as its ServiceAccount runs a job to Succeeded', async (t) => {
  const { kc } = fx.cluster();
  const core = kc.makeApiClient(CoreV1Api);
  const tr = await core.createNamespacedServiceAccountToken({
    name: 'gmt-operator',
    namespace: 'gmt-system',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token;
  if (token === undefined) throw new Error('no token from the TokenRequest API');
  const admin = kc.getCurrentCluster();
  if (admin === null) throw new Error('no current cluster');
  const sa = new KubeConfig();
  sa.loadFromOptions({
    clusters: [{ ...admin, name: 'test' }],
    users: [{ name: 'gmt-operator', token }],
    contexts: [{ name: 'sa', cluster: 'test', user: 'gmt-operator' }],
    currentContext: 'sa',
  });
  const ns = await fx.namespace('rbac');
  await fx.startOperator({
    kc: sa,
    namespaces: [ns],
    leaderElection: { namespace: 'gmt-system', name: 'gmt-operator-rbac-test', leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 1 },
  });
  await fx.create(ns, fx.tiny('tiny'));
  const done = await fx.waitForJob(t, ns, 'tiny', 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed', 180_000);
  t.is(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
  t.is(done.status?.step, 12);
  const forbidden = fx.logs.filter((l) => /forbidden|403/i.test(l));
  t.deepEqual(forbidden, [], 'the operator was never denied');
});

// Operator metrics names and the /metrics, /healthz, /readyz server; label selectors and keys.
import test from 'ava';
import { METRIC, OperatorMetrics, cachesSyncedCheck, leaderElectionCheck, startOperatorServer } from '../../../operator/src/metrics/index.js';
import { controllerOwnerKey, labelsMatch, objectKey, parseObjectMeta, splitKey, type LabelSelector } from '../../../operator/src/runtime/index.js';

test('metrics - every controller-runtime series is exposed under its constant name', async (t) => {
  const m = new OperatorMetrics({ defaultMetrics: false });
  m.workQueue('q');
  m.controller('c').reconciled('success', 0.01);
  m.leaderElection('lease').leading(true);
  const text = await m.registry.metrics();
  for (const name of Object.values(METRIC)) t.regex(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  t.regex(text, /^controller_runtime_reconcile_total\{controller="c",result="success"\} 1$/m);
  t.regex(text, /^leader_election_master_status\{name="lease"\} 1$/m);
  t.regex(text, /^workqueue_depth\{name="q"\} 0$/m);
});

test('metrics server - /metrics, /healthz, /readyz follow the checks', async (t) => {
  const m = new OperatorMetrics({ defaultMetrics: false });
  const informer = {
    name: 'configmaps',
    synced: false,
    hasSynced(): boolean {
      return this.synced;
    },
  };
  const elector = { state: 'standby' };
  const server = await startOperatorServer({
    port: 0,
    host: '127.0.0.1',
    registry: m.registry,
    readiness: [cachesSyncedCheck([informer]), leaderElectionCheck(elector)],
  });
  t.teardown(() => server.close());
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const r = await fetch(`${server.url}${path}`);
    return { status: r.status, body: await r.text() };
  };
  t.is((await get('/healthz')).status, 200);
  let ready = await get('/readyz');
  t.is(ready.status, 503);
  t.regex(ready.body, /\[-\]informers failed: not synced: configmaps/);
  informer.synced = true;
  ready = await get('/readyz');
  t.is(ready.status, 200, 'synced and standing by is ready');
  elector.state = 'leading';
  t.is((await get('/readyz')).status, 200);
  elector.state = 'stopped';
  t.is((await get('/readyz')).status, 503, 'a stopped elector (lost lease) is not ready');
  const metrics = await get('/metrics');
  t.is(metrics.status, 200);
  t.regex(metrics.body, /controller_runtime_reconcile_total/);
  t.is((await get('/nope')).status, 404);
  t.is((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405);
});

test('label selector - matchLabels and matchExpressions', (t) => {
  const labels = { app: 'gmt', tier: 'worker' };
  const table: { sel: LabelSelector; want: boolean }[] = [
    { sel: {}, want: true },
    { sel: { matchLabels: { app: 'gmt' } }, want: true },
    { sel: { matchLabels: { app: 'other' } }, want: false },
    { sel: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['worker', 'x'] }] }, want: true },
    { sel: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['worker'] }] }, want: false },
    { sel: { matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['a'] }] }, want: true },
    { sel: { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, want: true },
    { sel: { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, want: false },
    { sel: { matchLabels: { app: 'gmt' }, matchExpressions: [{ key: 'missing', operator: 'Exists' }] }, want: false },
  ];
  for (const row of table) t.is(labelsMatch(row.sel, labels), row.want, JSON.stringify(row.sel));
});

test('keys - object keys, split, and the controlling owner key', (t) => {
  t.is(objectKey({ namespace: 'ns', name: 'a' }), 'ns/a');
  t.is(objectKey({ name: 'node-1' }), 'node-1');
  t.deepEqual(splitKey('ns/a'), { namespace: 'ns', name: 'a' });
  t.deepEqual(splitKey('node-1'), { namespace: undefined, name: 'node-1' });
  const meta = parseObjectMeta({
    metadata: {
      name: 'child',
      namespace: 'ns',
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'other', uid: '1' },
        { apiVersion: 'gmt.example.io/v1alpha1', kind: 'GmtFineTune', name: 'job', uid: '2', controller: true },
      ],
    },
  });
  if (meta === undefined) return t.fail('metadata did not parse');
  t.is(controllerOwnerKey(meta, { group: 'gmt.example.io', kind: 'GmtFineTune' }), 'ns/job');
  t.is(controllerOwnerKey(meta, { group: 'apps', kind: 'Deployment' }), undefined, 'not the controller');
  t.is(parseObjectMeta({ metadata: {} }), undefined);
});

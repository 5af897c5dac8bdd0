// The runtime against the real control plane (test/harness): the informer's cache and key
// routing (self and controlling owner), relist after 410 Gone, server-side apply idempotence and
// field ownership, idempotent delete, and Event aggregation.
import test from 'ava';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { z } from 'zod';
import { useTestCluster } from '../../harness/cluster.js';
import { createTestNamespace, waitFor } from '../../harness/k8s-helpers.js';
import {
  ApplyError,
  Controller,
  EventRecorder,
  Informer,
  WorkQueue,
  applyServerSide,
  deleteIfExists,
  makeObjectClient,
  splitKey,
  type ApplyObject,
  type KeySink,
  type ListResult,
} from '../../../operator/src/runtime/index.js';

const cluster = useTestCluster(test);

const configMapSchema = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    uid: z.string(),
    resourceVersion: z.string(),
    labels: z.record(z.string(), z.string()).optional(),
    creationTimestamp: z.string(),
  }),
  data: z.record(z.string(), z.string()).optional(),
});
type ConfigMap = z.infer<typeof configMapSchema>;

const widgetSchema = z.object({ metadata: z.object({ name: z.string(), namespace: z.string() }) });
const listSchema = z.object({ metadata: z.object({ resourceVersion: z.string().optional() }).optional(), items: z.array(z.unknown()) });

/** A KeySink that remembers every key, in order. */
function keyLog(): KeySink & { keys: string[]; count(k: string): number } {
  const keys: string[] = [];
  return { keys, add: (k) => void keys.push(k), count: (k) => keys.filter((x) => x === k).length };
}

function configMapInformer(kc: KubeConfig, namespace: string, list?: () => Promise<ListResult>): Informer<ConfigMap> {
  const core = kc.makeApiClient(CoreV1Api);
  return new Informer<ConfigMap>({
    kc,
    name: 'configmaps',
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    list: list ?? (() => core.listNamespacedConfigMap({ namespace })),
    parse: (raw) => configMapSchema.parse(raw),
    log: () => {},
  });
}

test('informer - sees create, update and delete of ConfigMaps and enqueues their keys', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-inf');
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'pre', labels: { tier: 'a' } }, data: { v: '0' } } });
  const inf = configMapInformer(kc, ns);
  const queue = new WorkQueue({ name: 'configmaps' });
  inf.enqueue(queue);
  t.teardown(() => inf.close());
  inf.start();
  await inf.waitForSync();
  t.true(inf.hasSynced());
  t.is(inf.get(ns, 'pre')?.data?.['v'], '0', 'pre-existing object in the cache after sync');
  t.is(typeof inf.get(ns, 'pre')?.metadata.creationTimestamp, 'string', 'listed objects are in wire format');

  // Drain the keys of the initial list (pre and the kube-root-ca.crt that every namespace gets).
  const next = async (): Promise<string> => {
    let timer: NodeJS.Timeout | undefined;
    const k = await Promise.race([queue.get(), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 30_000)))]);
    clearTimeout(timer);
    if (k === undefined) throw new Error('no key within 30 s');
    queue.done(k);
    return k;
  };
  const initial = new Set<string>();
  while (queue.depth > 0) initial.add(await next());
  t.true(initial.has(`${ns}/pre`));

  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'a', labels: { tier: 'b' } }, data: { v: '1' } } });
  t.is(await next(), `${ns}/a`, 'create enqueues the key');
  t.is(inf.get(ns, 'a')?.data?.['v'], '1');
  t.is(inf.get(ns, 'a')?.metadata.creationTimestamp.length, 20, 'watched objects are in wire format too');

  await core.patchNamespacedConfigMap({ namespace: ns, name: 'a', body: [{ op: 'replace', path: '/data/v', value: '2' }] });
  t.is(await next(), `${ns}/a`, 'update enqueues the key');
  t.is(inf.get(ns, 'a')?.data?.['v'], '2');
  t.deepEqual(
    inf.list({ namespace: ns, selector: { matchLabels: { tier: 'b' } } }).map((c) => c.metadata.name),
    ['a'],
    'list by label selector',
  );
  t.deepEqual(
    inf
      .list({ selector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] } })
      .map((c) => c.metadata.name)
      .sort(),
    ['a', 'pre'],
  );

  await core.deleteNamespacedConfigMap({ namespace: ns, name: 'a' });
  t.is(await next(), `${ns}/a`, 'delete enqueues the key');
  t.is(inf.get(ns, 'a'), undefined, 'gone from the cache');
  await inf.close();
  await inf.closed;
});

test('informer - an owned child enqueues its controlling owner; cache lists by owner UID', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-own');
  const core = kc.makeApiClient(CoreV1Api);
  const parent = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'parent' } } });
  const other = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'not-controller' } } });
  const inf = configMapInformer(kc, ns);
  const owners = keyLog();
  inf.enqueueOwner(owners, { group: '', kind: 'ConfigMap' });
  t.teardown(() => inf.close());
  inf.start();
  await inf.waitForSync();
  t.deepEqual(owners.keys, [], 'objects without a controlling owner enqueue nothing');

  const ref = (cm: typeof parent, controller: boolean) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    name: cm.metadata?.name ?? '',
    uid: cm.metadata?.uid ?? '',
    controller,
  });
  await core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'child', ownerReferences: [ref(other, false), ref(parent, true)] }, data: { v: '1' } },
  });
  await waitFor('owner key', async () => (owners.count(`${ns}/parent`) >= 1 ? true : undefined), { timeoutMs: 30_000 });
  t.deepEqual(owners.keys, [`${ns}/parent`], 'only the controller owner, not the other owner or the child');
  t.deepEqual(
    inf.listByOwner(parent.metadata?.uid ?? '').map((c) => c.metadata.name),
    ['child'],
  );
  t.deepEqual(
    inf.listByOwner(other.metadata?.uid ?? '').map((c) => c.metadata.name),
    ['child'],
    'indexed by every owner reference',
  );

  await core.patchNamespacedConfigMap({ namespace: ns, name: 'child', body: [{ op: 'replace', path: '/data/v', value: '2' }] });
  await waitFor('owner key after update', async () => (owners.count(`${ns}/parent`) >= 2 ? true : undefined), { timeoutMs: 30_000 });
  await core.deleteNamespacedConfigMap({ namespace: ns, name: 'child' });
  await waitFor('owner key after delete', async () => (owners.count(`${ns}/parent`) >= 3 ? true : undefined), { timeoutMs: 30_000 });
  t.deepEqual(inf.listByOwner(parent.metadata?.uid ?? ''), []);
});

test('informer - relists after 410 Gone (client-node ListWatch) and drops objects missing from the relist', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-410');
  // A custom resource: its watch cache starts at the CRD's creation revision, so a watch from
  // resourceVersion 1 is genuinely "too old" (410 Expired) on the real apiserver. (ConfigMaps'
  // cache starts at the apiserver's first revision in a fresh cluster, where 1 is still served.)
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const group = 'rt.gmt.dev';
  await ext.createCustomResourceDefinition({
    body: {
      metadata: { name: `widgets.${group}` },
      spec: {
        group,
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } }],
      },
    },
  });
  await waitFor('CRD established', async () => {
    const crd = await ext.readCustomResourceDefinition({ name: `widgets.${group}` });
    return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true ? true : undefined;
  });
  const custom = kc.makeApiClient(CustomObjectsApi);
  const widget = (name: string) => ({ apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name, namespace: ns } });
  await waitFor('widget create', async (): Promise<unknown> =>
    custom.createNamespacedCustomObject({ group, version: 'v1', namespace: ns, plural: 'widgets', body: widget('real') }),
  );
  let calls = 0;
  // First list: claim resourceVersion 1 and include an object that does not exist. ListWatch must
  // get 410 from the watch and relist; the relist (real) lacks the ghost, so it is reported deleted.
  const list = async (): Promise<ListResult> => {
    const real = listSchema.parse(await custom.listNamespacedCustomObject({ group, version: 'v1', namespace: ns, plural: 'widgets' }));
    if (calls++ > 0) return real;
    const ghost = { ...widget('ghost'), metadata: { name: 'ghost', namespace: ns, uid: 'ghost-uid', resourceVersion: '1' } };
    return { metadata: { resourceVersion: '1' }, items: [...real.items, ghost] };
  };
  const inf = new Informer({
    kc,
    name: 'widgets',
    path: `/apis/${group}/v1/namespaces/${ns}/widgets`,
    list,
    parse: (raw) => widgetSchema.parse(raw),
    restartBaseMs: 200,
    log: (l) => t.log(l),
  });
  const keys = keyLog();
  inf.enqueue(keys);
  t.teardown(() => inf.close());
  inf.start();
  await inf.waitForSync();
  await waitFor('relist', async () => (inf.stats.lists >= 2 ? true : undefined), { timeoutMs: 30_000 });
  t.is(inf.stats.lists, 2, 'exactly one relist');
  t.is(inf.get(ns, 'ghost'), undefined, 'ghost dropped by the relist');
  t.truthy(inf.get(ns, 'real'));
  t.is(keys.count(`${ns}/ghost`), 2, 'ghost enqueued on add and on delete');
  // The watch works after the relist.
  await custom.createNamespacedCustomObject({ group, version: 'v1', namespace: ns, plural: 'widgets', body: widget('after') });
  await waitFor('watch after relist', async () => inf.get(ns, 'after'), { timeoutMs: 30_000 });
  t.true(keys.keys.includes(`${ns}/after`));
});

test('apply - server-side apply is idempotent, fields are owned by our manager, force takes them back', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-ssa');
  const client = makeObjectClient(kc);
  const meta = { name: 'applied', namespace: ns, labels: { app: 'gmt' } };
  const desired: V1ConfigMap & ApplyObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, data: { k: 'v' } };
  const first = await applyServerSide(client, desired, 'gmt-operator');
  const second = await applyServerSide<V1ConfigMap & ApplyObject>(client, { ...desired, metadata: { ...meta, resourceVersion: '1' } }, 'gmt-operator');
  t.truthy(first.metadata?.resourceVersion);
  t.is(
    second.metadata?.resourceVersion,
    first.metadata?.resourceVersion,
    'second apply of the same intent changes nothing (and a stale resourceVersion is ignored)',
  );
  const ours = second.metadata?.managedFields?.find((m) => m.manager === 'gmt-operator');
  t.is(ours?.operation, 'Apply');
  t.regex(JSON.stringify(ours?.fieldsV1), /"f:data":\{"f:k":\{\}\}/, 'data.k owned by gmt-operator');
  t.regex(JSON.stringify(ours?.fieldsV1), /"f:labels":\{"f:app":\{\}\}/);

  // Another manager changing our field without force conflicts; with force it wins; our next apply takes it back.
  const err = await t.throwsAsync(applyServerSide(client, { ...desired, data: { k: 'theirs' } }, 'someone-else', { force: false }));
  t.regex(err.message, /409|onflict/);
  await applyServerSide(client, { ...desired, data: { k: 'theirs' } }, 'someone-else', { force: true });
  const back = await applyServerSide(client, desired, 'gmt-operator');
  t.is(back.data?.['k'], 'v');
  const managers = (back.metadata?.managedFields ?? []).filter((m) => JSON.stringify(m.fieldsV1).includes('"f:k"')).map((m) => m.manager);
  t.deepEqual(managers, ['gmt-operator'], 'data.k has exactly one owner again');

  const changed = await applyServerSide(client, { ...desired, data: { k: 'v2' } }, 'gmt-operator');
  t.not(changed.metadata?.resourceVersion, back.metadata?.resourceVersion, 'a changed intent is written');
  const dry = await applyServerSide(client, { ...desired, data: { k: 'dry' } }, 'gmt-operator', { dryRun: true });
  t.is(dry.data['k'], 'dry');
  const core = kc.makeApiClient(CoreV1Api);
  t.is((await core.readNamespacedConfigMap({ namespace: ns, name: 'applied' })).data?.['k'], 'v2', 'dry run wrote nothing');

  await t.throwsAsync(applyServerSide(client, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: ns } }, 'gmt-operator'), {
    instanceOf: ApplyError,
  });
  const ref = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: ns } };
  t.true(await deleteIfExists(client, ref));
  t.false(await deleteIfExists(client, ref), 'already gone');
});

test('events - recorded with reason and message; repeats aggregate into a count', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-ev');
  const core = kc.makeApiClient(CoreV1Api);
  const cm = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'subject' } } });
  const subject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'subject', namespace: ns, uid: cm.metadata?.uid } };
  const logs: string[] = [];
  const rec = new EventRecorder({ kc, component: 'gmt-operator', instance: 'test-pod', log: (l) => logs.push(l) });
  const e1 = await rec.normal(subject, 'Created', 'created the gang');
  const e2 = await rec.normal(subject, 'Created', 'created the gang');
  const e3 = await rec.normal(subject, 'Created', 'created the gang');
  const w = await rec.warning(subject, 'BackOff', 'x'.repeat(5000));
  t.deepEqual(logs, []);
  t.is(e1?.metadata.name, e3?.metadata.name, 'one Event for the repeats');
  t.is(e2?.count, 2);
  t.is(e3?.count, 3);
  const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=subject` });
  const byReason = new Map(list.items.map((e) => [e.reason, e]));
  t.is(list.items.length, 2);
  const created = byReason.get('Created');
  t.is(created?.count, 3);
  t.is(created?.type, 'Normal');
  t.is(created?.message, 'created the gang');
  t.is(created?.involvedObject.uid, cm.metadata?.uid);
  t.is(created?.source?.component, 'gmt-operator');
  t.is(created?.reportingComponent, 'gmt-operator');
  t.true((created?.lastTimestamp?.getTime() ?? 0) >= (created?.firstTimestamp?.getTime() ?? Infinity));
  t.is(byReason.get('BackOff')?.type, 'Warning');
  t.is(byReason.get('BackOff')?.message?.length, 1024, 'message truncated to 1024');
  t.is(w?.count, 1);
  // A deleted aggregate is recreated instead of failing.
  await core.deleteNamespacedEvent({ namespace: ns, name: created?.metadata.name ?? '' });
  const again = await rec.normal(subject, 'Created', 'created the gang');
  t.is(again?.count, 1);
  t.not(again?.metadata.name, created?.metadata.name);
});

test('controller - informers + queue + reconcile with SSA: a deleted child is recreated via its owner key', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-ctl');
  const core = kc.makeApiClient(CoreV1Api);
  const client = makeObjectClient(kc);
  const parents = configMapInformer(kc, ns);
  const queue = new WorkQueue({ name: 'copier' });
  parents.enqueue(queue);
  parents.enqueueOwner(queue, { group: '', kind: 'ConfigMap' });
  const reconciled: string[] = [];
  // Toy reconcile: every ConfigMap labelled role=source gets an owned copy `<name>-copy`.
  const controller = new Controller({
    name: 'copier',
    queue,
    workers: 2,
    waitFor: [parents],
    reconcile: async (key) => {
      reconciled.push(key);
      const { namespace, name } = splitKey(key);
      const src = parents.get(namespace, name);
      if (src === undefined || src.metadata.labels?.['role'] !== 'source') return;
      const child: V1ConfigMap & ApplyObject = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: `${name}-copy`,
          namespace: namespace ?? '',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name, uid: src.metadata.uid, controller: true }],
        },
        data: src.data ?? {},
      };
      await applyServerSide(client, child, 'gmt-operator');
    },
  });
  t.teardown(async () => {
    await controller.close();
    await parents.close();
  });
  parents.start();
  void controller.start();
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'src', labels: { role: 'source' } }, data: { v: '1' } } });
  const readCopy = async () => core.readNamespacedConfigMap({ namespace: ns, name: 'src-copy' }).catch(() => undefined);
  await waitFor('copy created', readCopy, { timeoutMs: 30_000 });
  await core.patchNamespacedConfigMap({ namespace: ns, name: 'src', body: [{ op: 'replace', path: '/data/v', value: '2' }] });
  await waitFor('copy updated', async () => ((await readCopy())?.data?.['v'] === '2' ? true : undefined), { timeoutMs: 30_000 });
  await core.deleteNamespacedConfigMap({ namespace: ns, name: 'src-copy' });
  const before = reconciled.filter((k) => k === `${ns}/src`).length;
  await waitFor('copy recreated', async () => ((await readCopy())?.data?.['v'] === '2' ? true : undefined), { timeoutMs: 30_000 });
  t.true(reconciled.filter((k) => k === `${ns}/src`).length > before, 'the child deletion woke the owner');
  t.is(queue.numRequeues(`${ns}/src`), 0);
});

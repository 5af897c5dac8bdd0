// The node agent against a real control plane: what it promises beyond the e2e basics
// (environment, ports, restarts, graceful deletion, logs, GPU scheduling).

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { useTestCluster } from '../../harness/cluster.js';
import { createTestNamespace, waitFor, waitForGone, waitForPodPhase } from '../../harness/k8s-helpers.js';
import { AGENT_NODE_LABEL } from '../../node-agent/node.js';

const cluster = useTestCluster(test);

function pod(name: string, container: Partial<V1Container> & { script: string }, spec: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  const { script, ...rest } = container;
  return {
    metadata: { name, labels: { app: 'agent-test' }, annotations: { 'gmt.dev/note': 'hello' } },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      ...spec,
      containers: [{ name: 'main', image: 'gmt-test/shell', command: ['sh', '-c', script], ...rest }],
    },
  };
}

async function logOf(ns: string, name: string, container = 'main', restart?: number): Promise<string> {
  const agent = cluster().agent;
  if (agent === undefined) throw new Error('no local node agent');
  return (await agent.containerLog(ns, name, container, restart)) ?? '';
}

function envLines(log: string): Map<string, string> {
  return new Map(
    log
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

test('node agent - registers a Ready node with allocatable nvidia.com/gpu', async (t) => {
  const core = cluster().kc.makeApiClient(CoreV1Api);
  const nodes = await core.listNode({ labelSelector: `${AGENT_NODE_LABEL}=true` });
  t.is(nodes.items.length, 1);
  const node = nodes.items[0];
  t.is(node?.status?.allocatable?.['nvidia.com/gpu'], '8');
  t.is(node?.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  const lease = await waitFor('node lease', async () => {
    const { CoordinationV1Api } = await import('@kubernetes/client-node');
    return cluster()
      .kc.makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: node?.metadata?.name ?? '', namespace: 'kube-node-lease' });
  });
  t.truthy(lease.spec?.renewTime);
});

test('node agent - runs a pod to Succeeded and keeps its output as the container log', async (t) => {
  const ns = await createTestNamespace(cluster().kc, 'agent-log');
  const core = cluster().kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: ns, body: pod('logger', { script: 'echo to-stdout; echo to-stderr >&2' }) });
  const done = await waitForPodPhase(cluster().kc, ns, 'logger', ['Succeeded', 'Failed']);
  t.is(done.status?.phase, 'Succeeded');
  t.is(done.status?.containerStatuses?.[0]?.state?.terminated?.reason, 'Completed');
  t.is(done.status?.podIP?.startsWith('127.'), true);
  const log = await logOf(ns, 'logger');
  t.regex(log, /to-stdout/);
  t.regex(log, /to-stderr/);
});

test('node agent - passes env, downward-API fields, ConfigMap and Secret values', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-env');
  const core = c.kc.makeApiClient(CoreV1Api);
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cfg' }, data: { LEVEL: 'debug', 'other.key': 'x' } } });
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'sec' }, stringData: { token: 's3cret' } } });
  const body = pod('env', {
    script: 'env | sort',
    envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CM_' }],
    env: [
      { name: 'PLAIN', value: 'plain' },
      { name: 'EXPANDED', value: '$(PLAIN)-and-$(CM_LEVEL)' },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
      { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'APP_LABEL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
      { name: 'NOTE', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['gmt.dev/note']" } } },
      { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
      { name: 'FROM_CM', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'other.key' } } },
      { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'sec', key: 'token' } } },
      { name: 'MISSING_OK', valueFrom: { secretKeyRef: { name: 'nope', key: 'x', optional: true } } },
    ],
    resources: { limits: { memory: '256Mi' } },
  });
  const created = await core.createNamespacedPod({ namespace: ns, body });
  const done = await waitForPodPhase(c.kc, ns, 'env', ['Succeeded', 'Failed']);
  t.is(done.status?.phase, 'Succeeded');
  const env = envLines(await logOf(ns, 'env'));
  t.is(env.get('PLAIN'), 'plain');
  t.is(env.get('EXPANDED'), 'plain-and-debug');
  t.is(env.get('CM_LEVEL'), 'debug');
  t.is(env.get('POD_NAME'), 'env');
  t.is(env.get('POD_NAMESPACE'), ns);
  t.is(env.get('POD_UID'), created.metadata?.uid);
  t.is(env.get('NODE_NAME'), done.spec?.nodeName);
  t.is(env.get('POD_IP'), done.status?.podIP);
  t.is(env.get('APP_LABEL'), 'agent-test');
  t.is(env.get('NOTE'), 'hello');
  t.is(env.get('MEM_MI'), '256');
  t.is(env.get('FROM_CM'), 'x');
  t.is(env.get('FROM_SECRET'), 's3cret');
  t.false(env.has('MISSING_OK'));
  t.truthy(env.get('KUBERNETES_SERVICE_PORT'));
});

test('node agent - a missing ConfigMap holds the container in CreateContainerConfigError until it exists', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-cfgerr');
  const core = c.kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({
    namespace: ns,
    body: pod('late', { script: 'echo "got $V"', env: [{ name: 'V', valueFrom: { configMapKeyRef: { name: 'later', key: 'v' } } }] }),
  });
  await waitFor('CreateContainerConfigError', async () => {
    const p = await core.readNamespacedPod({ name: 'late', namespace: ns });
    return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError' ? p : undefined;
  });
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'later' }, data: { v: 'now' } } });
  const done = await waitForPodPhase(c.kc, ns, 'late', ['Succeeded', 'Failed']);
  t.is(done.status?.phase, 'Succeeded');
  t.regex(await logOf(ns, 'late'), /got now/);
});

test('node agent - gives each pod its own loopback IP and free ports for its container ports', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-ports');
  const core = c.kc.makeApiClient(CoreV1Api);
  const script = 'echo "GMT_POD_IP=$GMT_POD_IP"; echo "GMT_PORT_METRICS=$GMT_PORT_METRICS"';
  for (const name of ['a', 'b']) {
    await core.createNamespacedPod({ namespace: ns, body: pod(name, { script, ports: [{ name: 'metrics', containerPort: 9090 }] }) });
  }
  const [a, b] = await Promise.all(['a', 'b'].map((n) => waitForPodPhase(c.kc, ns, n, ['Succeeded', 'Failed'])));
  t.is(a?.status?.phase, 'Succeeded');
  t.is(b?.status?.phase, 'Succeeded');
  const envA = envLines(await logOf(ns, 'a'));
  const envB = envLines(await logOf(ns, 'b'));
  t.is(envA.get('GMT_POD_IP'), a?.status?.podIP);
  t.not(a?.status?.podIP, b?.status?.podIP);
  t.regex(envA.get('GMT_PORT_METRICS') ?? '', /^\d+$/);
  t.not(envA.get('GMT_PORT_METRICS'), envB.get('GMT_PORT_METRICS'));
});

test('node agent - restartPolicy OnFailure restarts a failing container and counts restarts', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-restart');
  const core = c.kc.makeApiClient(CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'gmt-restart-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // Fails twice, then succeeds: the counter lives on the host because runs share no filesystem state otherwise.
  const script = `n=$(cat ${dir}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${dir}/n; echo "run $n"; [ $n -ge 3 ]`;
  await core.createNamespacedPod({ namespace: ns, body: pod('flaky', { script }, { restartPolicy: 'OnFailure' }) });
  const done = await waitForPodPhase(c.kc, ns, 'flaky', ['Succeeded', 'Failed']);
  t.is(done.status?.phase, 'Succeeded');
  const cs = done.status?.containerStatuses?.[0];
  t.is(cs?.restartCount, 2);
  t.is(cs?.lastState?.terminated?.exitCode, 1);
  t.regex(await logOf(ns, 'flaky', 'main', 0), /run 1/);
  t.regex(await logOf(ns, 'flaky'), /run 3/);
});

test('node agent - deletion sends SIGTERM, waits for the process, then removes the pod', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-delete');
  const core = c.kc.makeApiClient(CoreV1Api);
  const script = 'trap "echo got-TERM; sleep 1; echo cleaned-up; exit 0" TERM; echo started; while true; do sleep 0.1; done';
  await core.createNamespacedPod({ namespace: ns, body: pod('sleeper', { script }, { terminationGracePeriodSeconds: 30 }) });
  await waitForPodPhase(c.kc, ns, 'sleeper', ['Running']);
  await waitFor('the container to print "started"', async () => ((await logOf(ns, 'sleeper')).includes('started') ? true : undefined));
  const t0 = Date.now();
  await core.deleteNamespacedPod({ name: 'sleeper', namespace: ns });
  await waitForGone(`pod ${ns}/sleeper`, () => core.readNamespacedPod({ name: 'sleeper', namespace: ns }));
  const took = Date.now() - t0;
  const log = await logOf(ns, 'sleeper');
  t.regex(log, /got-TERM[\s\S]*cleaned-up/);
  t.true(took >= 1000 && took < 30_000, `deletion took ${took} ms`);
});

test('node agent - a process that ignores SIGTERM is killed after the grace period', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-kill');
  const core = c.kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: ns, body: pod('stubborn', { script: 'trap "" TERM; echo started; while true; do sleep 0.1; done' }) });
  await waitForPodPhase(c.kc, ns, 'stubborn', ['Running']);
  const t0 = Date.now();
  await core.deleteNamespacedPod({ name: 'stubborn', namespace: ns, gracePeriodSeconds: 2 });
  await waitForGone(`pod ${ns}/stubborn`, () => core.readNamespacedPod({ name: 'stubborn', namespace: ns }));
  const took = Date.now() - t0;
  t.true(took >= 2000 && took < 20_000, `deletion took ${took} ms`);
});

test('node agent - schedules GPU requests within the node capacity and leaves larger ones Pending', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-gpu');
  const core = c.kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: ns, body: pod('gpu-2', { script: 'exit 0', resources: { limits: { 'nvidia.com/gpu': '2' } } }) });
  await core.createNamespacedPod({ namespace: ns, body: pod('gpu-99', { script: 'exit 0', resources: { limits: { 'nvidia.com/gpu': '99' } } }) });
  const ok = await waitForPodPhase(c.kc, ns, 'gpu-2', ['Succeeded', 'Failed']);
  t.is(ok.status?.phase, 'Succeeded');
  t.truthy(ok.spec?.nodeName);
  const stuck = await waitFor('gpu-99 to be reported Unschedulable', async () => {
    const p = await core.readNamespacedPod({ name: 'gpu-99', namespace: ns });
    return p.status?.conditions?.some((x) => x.type === 'PodScheduled' && x.reason === 'Unschedulable') === true ? p : undefined;
  });
  t.is(stuck.status?.phase, 'Pending');
  t.is(stuck.spec?.nodeName, undefined);
});

test('node agent - an image without a local mapping is reported as ErrImagePull', async (t) => {
  const c = cluster();
  const ns = await createTestNamespace(c.kc, 'agent-image');
  const core = c.kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: ns, body: pod('unknown', { script: 'exit 0', image: 'example.invalid/nothing:1' }) });
  const p = await waitFor('ErrImagePull', async () => {
    const got = await core.readNamespacedPod({ name: 'unknown', namespace: ns });
    return got.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImagePull' ? got : undefined;
  });
  t.is(p.status?.phase, 'Pending');
  t.regex(p.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '', /GMT_NODE_AGENT_IMAGES/);
});

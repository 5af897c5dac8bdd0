// Leader election on a real coordination.k8s.io/v1 Lease (test/harness control plane): exactly
// one leader among racing candidates, fast handover on release, takeover after expiry when the
// leader dies without releasing, and MicroTime lease timestamps. Short timings (lease 2 s, renew
// deadline 1.5 s, retry 0.25 s) keep the tests quick; the algorithm is the same as with 15/10/2.
import test, { type ExecutionContext } from 'ava';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { useTestCluster } from '../../harness/cluster.js';
import { createTestNamespace, waitFor } from '../../harness/k8s-helpers.js';
import { LeaderElectionConfigError, LeaderElector } from '../../../operator/src/runtime/index.js';
import { OperatorMetrics } from '../../../operator/src/metrics/index.js';

const cluster = useTestCluster(test);

const TIMING = { leaseDurationSeconds: 2, renewDeadlineSeconds: 1.5, retryPeriodSeconds: 0.25 } as const;

/** Candidates on one lease plus an overlap detector fed by the callbacks. */
function candidates(t: ExecutionContext, kc: KubeConfig, namespace: string, ids: readonly string[], metrics?: OperatorMetrics) {
  const leading = new Set<string>();
  const overlaps: string[] = [];
  const history: { id: string; event: 'start' | 'stop'; at: number }[] = [];
  const electors = ids.map(
    (id) =>
      new LeaderElector({
        kc,
        namespace,
        name: 'gmt-operator',
        identity: id,
        ...TIMING,
        ...(metrics !== undefined ? { metrics: metrics.leaderElection('gmt-operator') } : {}),
        log: (l) => t.log(l),
        onStartedLeading: () => {
          if (leading.size > 0) overlaps.push(`${id} started while ${[...leading].join(',')} led`);
          leading.add(id);
          history.push({ id, event: 'start', at: Date.now() });
        },
        onStoppedLeading: () => {
          leading.delete(id);
          history.push({ id, event: 'stop', at: Date.now() });
        },
      }),
  );
  t.teardown(() => Promise.all(electors.map((e) => e.close())));
  const leader = async (): Promise<LeaderElector> =>
    waitFor(
      'a leader',
      async () => {
        const l = electors.filter((e) => e.isLeader);
        return l.length === 1 ? l[0] : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
  return { electors, leading, overlaps, history, leader };
}

/** Samples isLeader of all electors for `ms`; returns the largest number leading at once. */
async function maxConcurrentLeaders(electors: readonly LeaderElector[], ms: number): Promise<number> {
  let max = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    max = Math.max(max, electors.filter((e) => e.isLeader).length);
    await new Promise((r) => setTimeout(r, 20));
  }
  return max;
}

test('leader election - of three racing candidates exactly one leads, and keeps leading', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-le');
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const c = candidates(t, kc, ns, ['a', 'b', 'c'], metrics);
  for (const e of c.electors) e.start();
  const leader = await c.leader();
  t.is(await maxConcurrentLeaders(c.electors, 3 * TIMING.leaseDurationSeconds * 1000), 1, 'never two leaders, across several lease durations');
  t.true(leader.isLeader, 'the first leader renewed and still leads');
  t.deepEqual(c.overlaps, []);
  for (const e of c.electors) t.is(e.state, e === leader ? 'leading' : 'standby');
  t.is(c.electors.find((e) => e !== leader)?.observedLeader, leader.identity, 'standbys see who leads');
  const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: 'gmt-operator' });
  t.is(lease.spec?.holderIdentity, leader.identity);
  t.is(lease.spec?.leaseDurationSeconds, TIMING.leaseDurationSeconds);
  // client-node returns MicroTime fields as the wire string; they carry microseconds.
  t.regex(String(lease.spec?.renewTime), /\.\d{6}Z$/, 'renewTime is a MicroTime');
  t.regex(String(lease.spec?.acquireTime), /\.\d{6}Z$/, 'acquireTime is a MicroTime');
  t.regex(await metrics.registry.metrics(), /leader_election_master_status\{name="gmt-operator"\} 1/);
});

test('leader election - a released lease is taken over at once by a standby', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-le-rel');
  const c = candidates(t, kc, ns, ['a', 'b']);
  for (const e of c.electors) e.start();
  const first = await c.leader();
  const other = c.electors.find((e) => e !== first);
  if (other === undefined) return t.fail('no standby');
  const stoppedAt = Date.now();
  await first.close();
  t.is(first.state, 'stopped');
  t.false(first.lost);
  await waitFor('takeover', async () => (other.isLeader ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
  const took = Date.now() - stoppedAt;
  t.log(`takeover after release: ${took} ms`);
  t.true(took < TIMING.leaseDurationSeconds * 1000, `takeover (${took} ms) within a lease duration, not after expiry`);
  t.deepEqual(c.overlaps, []);
  const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: 'gmt-operator' });
  t.is(lease.spec?.holderIdentity, other.identity);
  t.is(lease.spec?.leaseTransitions, 1, 'one transition (release keeps the count; the new holder adds one)');
});

test('leader election - a leader that dies without releasing is replaced after the lease expires', async (t) => {
  const { kc } = cluster();
  const ns = await createTestNamespace(kc, 'rt-le-exp');
  const c = candidates(t, kc, ns, ['a', 'b']);
  for (const e of c.electors) e.start();
  const first = await c.leader();
  const other = c.electors.find((e) => e !== first);
  if (other === undefined) return t.fail('no standby');
  const leaseMs = TIMING.leaseDurationSeconds * 1000;
  const killedAt = Date.now();
  await first.close({ release: false }); // stops renewing: a crash as far as the lease is concerned
  await waitFor('takeover', async () => (other.isLeader ? true : undefined), { timeoutMs: 20_000, intervalMs: 10 });
  const took = Date.now() - killedAt;
  t.log(`takeover after expiry: ${took} ms`);
  // The standby must see the record unchanged for a full lease duration; the last renew was at
  // most one retry period before the kill.
  t.true(took >= leaseMs - TIMING.retryPeriodSeconds * 1000 - 100, `not before expiry (${took} ms)`);
  t.true(took <= leaseMs + 4 * TIMING.retryPeriodSeconds * 1000 + 1000, `soon after expiry (${took} ms)`);
  t.deepEqual(c.overlaps, []);
  const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: 'gmt-operator' });
  t.is(lease.spec?.holderIdentity, other.identity);
  t.is(lease.spec?.leaseTransitions, 1);
});

test('leader election - invalid timings are rejected', (t) => {
  const { kc } = cluster();
  const base = { kc, namespace: 'x', name: 'l', identity: 'i' };
  t.throws(() => new LeaderElector({ ...base, leaseDurationSeconds: 10, renewDeadlineSeconds: 10 }), { instanceOf: LeaderElectionConfigError });
  t.throws(() => new LeaderElector({ ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 }), { instanceOf: LeaderElectionConfigError });
  t.throws(() => new LeaderElector({ ...base, leaseDurationSeconds: 1.5, renewDeadlineSeconds: 1, retryPeriodSeconds: 0.1 }), {
    instanceOf: LeaderElectionConfigError,
  });
  t.notThrows(() => new LeaderElector(base), 'defaults 15/10/2 are valid');
});

test('leader election - a missing lease namespace is one error line saying what to create or which flag to set', async (t) => {
  const { kc } = cluster();
  const lines: Array<{ level: string; line: string }> = [];
  const elector = new LeaderElector({
    kc,
    namespace: 'gmt-no-such-namespace',
    name: 'gmt-operator',
    identity: 'a',
    ...TIMING,
    log: (line, level) => lines.push({ level: level ?? 'info', line }),
  });
  t.teardown(() => elector.close());
  elector.start();
  await new Promise((r) => setTimeout(r, 3000)); // about 6 retries
  t.false(elector.isLeader);
  const errors = lines.filter((l) => l.level === 'error');
  t.is(errors.length, 1, JSON.stringify(lines));
  t.regex(
    errors[0]!.line,
    /namespace "gmt-no-such-namespace" does not exist; create it \(kubectl create namespace gmt-no-such-namespace\) or start the operator with --leader-election-namespace/,
  );
  t.false(
    lines.some((l) => /HTTP 404/.test(l.line)),
    JSON.stringify(lines),
  );
  // Created, the lease is taken and the recovery is said at info level.
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'gmt-no-such-namespace' } } });
  t.teardown(async () => {
    await kc
      .makeApiClient(CoreV1Api)
      .deleteNamespace({ name: 'gmt-no-such-namespace' })
      .catch(() => undefined);
  });
  await waitFor('leadership', async () => (elector.isLeader ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
  t.true(
    lines.some((l) => l.level === 'info' && /reachable again/.test(l.line)),
    JSON.stringify(lines),
  );
});

// The dashboards against real data: the in-process operator (metrics on a fixed loopback port, with
// leader election) runs a small GmtFineTune whose two trainer ranks serve /metrics on fixed ports,
// and a real Prometheus (test/harness/prometheus.ts) scrapes all three every second. Afterwards
// every PromQL expression of every panel of dashboards/*.json is evaluated at a moment inside the
// run, with the dashboard variables replaced by this job's values, and must return data. The metric
// names Prometheus stored must all be defined in names.ts, and every name a dashboard uses must have
// been stored.
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeJobId } from '../../operator/src/controller/index.js';
import { METRIC as OPERATOR_METRIC } from '../../operator/src/metrics/names.js';
import { METRIC_NAMES as TRAINER_METRIC_NAMES } from '../../trainer/src/metrics/names.js';
import { createTestNamespace, waitFor } from '../harness/k8s-helpers.js';
import { freePort } from '../harness/processes.js';
import {
  DashboardSchema,
  baseMetricName,
  dashboardQueries,
  ensurePrometheus,
  metricNamesIn,
  startPrometheus,
  type PrometheusHandle,
} from '../harness/prometheus.js';
import { repoPath } from '../helpers/repo.js';
import { useOperatorFixture } from './operator-fixture.js';

const fx = useOperatorFixture(test, 'prometheus');

// The fixture's wrapper turns metrics off (GMT_METRICS_PORT=0); here each rank reads a fixed port
// from a file written before the job starts, so the scrape targets are known up front. The node
// agent reads this variable in the cluster's before hook, after this synchronous rewrite.
const portsDir = mkdtempSync(join(tmpdir(), 'gmt-e2e-prom-ports-'));
{
  const images = JSON.parse(process.env['GMT_NODE_AGENT_IMAGES'] ?? '{}') as Record<string, { entrypoint: string[] }>;
  let rewritten = 0;
  for (const image of Object.values(images)) {
    image.entrypoint = image.entrypoint.map((a) => {
      if (!a.includes('GMT_METRICS_PORT=0')) return a;
      rewritten += 1;
      return a.replace('GMT_METRICS_PORT=0', `GMT_METRICS_PORT="$(cat "${portsDir}/port-r$GMT_RANK")"`);
    });
  }
  if (rewritten !== 1) throw new Error(`expected the fixture wrapper to set GMT_METRICS_PORT=0 once, found ${rewritten}`);
  process.env['GMT_NODE_AGENT_IMAGES'] = JSON.stringify(images);
}

let prom: PrometheusHandle | undefined;
// Installed by the setup step (npm run setup:binaries); missing, the test fails with that command (never skipped).
test.before(async () => {
  await ensurePrometheus();
});
test.after.always(async () => {
  await prom?.close();
  await rm(portsDir, { recursive: true, force: true });
});

const KNOWN: ReadonlySet<string> = new Set<string>([...TRAINER_METRIC_NAMES, ...Object.values(OPERATOR_METRIC)]);
const OWN_PREFIXES = ['gmt_', 'controller_runtime_', 'workqueue_', 'leader_election_'];
const RATE_INTERVAL = '20s';
const STEPS = 48;

/** Replaces Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) by `values`; unknown ones stay. */
function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (all, a?: string, b?: string, c?: string) => values[a ?? b ?? c ?? ''] ?? all);
}

test.serial('prometheus - every panel of both dashboards returns data for a real job scraped by Prometheus', async (t) => {
  const started = Date.now();
  const trainerPorts = [await freePort(), await freePort()];
  for (const [rank, port] of trainerPorts.entries()) await writeFile(join(portsDir, `port-r${rank}`), String(port));
  const operatorPort = await freePort();
  const op = await fx.startOperator({
    metricsPort: operatorPort,
    leaderElection: { namespace: 'default', name: 'gmt-operator-prometheus-e2e', leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 },
  });
  await op.waitForSync();
  prom = await startPrometheus({
    scrapeJobs: [
      { job: 'gmt-operator', targets: [`127.0.0.1:${operatorPort}`] },
      { job: 'gmt-trainer', targets: trainerPorts.map((p) => `127.0.0.1:${p}`), honorLabels: true },
    ],
    log: (l) => t.log(`[prometheus] ${l}`),
  });
  const p = prom;

  const { kc } = fx.cluster();
  const ns = await createTestNamespace(kc, 'prom');
  const name = 'prom';
  const job = await fx.create(
    ns,
    fx.tiny(name, {
      method: { name: 'gmt', maskRatio: 0.2, maskScope: 'global' },
      training: { steps: STEPS, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 12, maxNewTokens: 4 },
      checkpoint: { interval: 12 },
    }),
  );
  const jobId = computeJobId(job);

  // A moment inside the run: both ranks are well into training, scraped by Prometheus, after an
  // eval and a checkpoint (so every panel has had something to show).
  const inside = await waitFor(
    `Prometheus sees both ranks of ${jobId} past step ${STEPS / 2}`,
    async () => {
      const r = await p.query(`gmt_trainer_step{job="${jobId}"}`);
      const ckpt = await p.query(`gmt_trainer_last_checkpoint_step{job="${jobId}"}`);
      return r.length === 2 && r.every((s) => s.value >= STEPS / 2 && s.value < STEPS) && ckpt.length > 0 ? Date.now() / 1000 - 1 : undefined;
    },
    {
      timeoutMs: 150_000,
      intervalMs: 500,
      describe: async () => `prometheus log tail:\n${await p.logTail(10)}\noperator log tail:\n${fx.logs.slice(-10).join('\n')}`,
    },
  );
  const done = await fx.waitForJob(t, ns, name, 'Succeeded', (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed', 150_000);
  t.is(done.status?.phase, 'Succeeded');
  t.log(`job ${jobId} Succeeded after ${((Date.now() - started) / 1000).toFixed(1)} s; evaluating at ${new Date(inside * 1000).toISOString()}`);

  // The operator's panels are rates over its own counters, which exist for the operator's whole life,
  // not only inside the run. The run itself now lasts seconds (native backend), and under load a
  // scrape of the in-process operator can miss its 1 s timeout, so evaluate them at the first moment
  // (not before `inside`) when Prometheus holds at least 3 successful operator scrapes in the window.
  const operatorAt = await waitFor(
    'Prometheus holds 3 successful scrapes of the operator in the rate window',
    async () => {
      const now = Date.now() / 1000 - 1;
      const r = await p.query(`sum_over_time(up{job="gmt-operator"}[${RATE_INTERVAL}])`, Math.max(now, inside));
      return r.length === 1 && (r[0]?.value ?? 0) >= 3 ? Math.max(now, inside) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, describe: async () => `prometheus log tail:\n${await p.logTail(10)}` },
  );
  if (operatorAt > inside) t.log(`operator panels evaluated ${(operatorAt - inside).toFixed(1)} s after the moment inside the run`);

  const values = { namespace: ns, name, job: jobId, rank: '0|1', __rate_interval: RATE_INTERVAL, __interval: '1s' };
  const files = readdirSync(repoPath('dashboards'))
    .filter((f) => f.endsWith('.json'))
    .sort();
  t.deepEqual(files, ['gmt-operator.json', 'gmt-training.json']);
  const empty: string[] = [];
  const used = new Set<string>();
  let evaluated = 0;
  for (const file of files) {
    const d = DashboardSchema.parse(JSON.parse(readFileSync(repoPath('dashboards', file), 'utf8')));
    for (const q of dashboardQueries(file, d)) {
      for (const n of metricNamesIn(q.expr)) used.add(n);
      if (q.variable) {
        // label_values(metric{…}, label): the series it lists must exist at that moment.
        const metric = metricNamesIn(q.expr)[0];
        const selector = /label_values\(\s*([^,]+),/.exec(q.expr)?.[1];
        if (metric === undefined || selector === undefined) continue;
        const r = await p.query(`count(${substitute(selector, values)})`, file === 'gmt-operator.json' ? operatorAt : inside);
        evaluated += 1;
        if (r.length === 0) empty.push(`${file} / ${q.where}: ${q.expr}`);
        continue;
      }
      const expr = substitute(q.expr, values);
      const r = await p.query(expr, file === 'gmt-operator.json' ? operatorAt : inside);
      evaluated += 1;
      if (r.length === 0) empty.push(`${file} / panel "${q.where}": ${expr}`);
      else if (r.every((s) => Number.isNaN(s.value))) t.log(`${file} / panel "${q.where}": only NaN at that moment: ${expr}`);
    }
  }
  t.log(`evaluated ${evaluated} expressions`);
  t.deepEqual(empty, [], 'expressions without data');

  // Names Prometheus stored: ours must all be defined in names.ts; every name a dashboard uses was stored.
  const stored = new Set(await p.labelValues('__name__'));
  const undefinedStored = [...stored].filter((n) => OWN_PREFIXES.some((pre) => n.startsWith(pre)) && !KNOWN.has(baseMetricName(n, KNOWN)));
  t.deepEqual(undefinedStored, [], 'stored series not defined in names.ts');
  const notStored = [...used].filter((n) => !stored.has(n) || !KNOWN.has(baseMetricName(n, KNOWN)));
  t.deepEqual(notStored, [], 'dashboard metric names not exported');
  t.log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

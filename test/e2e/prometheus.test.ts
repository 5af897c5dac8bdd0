// The dashboards against a real deployment: on the cluster of GMT_E2E_KUBECONFIG (the real test node
// under `npm run test:e2e`), the chart is installed with helm (the operator in its container, the
// in-cluster NATS), a GmtFineTune runs its two trainer pods, and a real Prometheus on this machine
// (test/harness/prometheus.ts) discovers the operator and the trainers through the API server
// (kubernetes_sd_configs, with a ServiceAccount holding the read-only RBAC a Prometheus has) and
// scrapes them every second on their pod IPs. Afterwards every PromQL expression of every panel of
// dashboards/*.json is evaluated at a moment inside the run, with the dashboard variables replaced
// by this job's values, and must return data. The metric names Prometheus stored must all be defined
// in names.ts, and every name a dashboard uses must have been stored.
import test, { type ExecutionContext } from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { CRD_NAME, CRD_PATH, GROUP, PLURAL, VERSION, parseGmtFineTune, type GmtFineTune, type GmtFineTuneInput } from '../../operator/src/api/index.js';
import { computeJobId, podName } from '../../operator/src/controller/index.js';
import { METRIC as OPERATOR_METRIC } from '../../operator/src/metrics/names.js';
import { METRIC_NAMES as TRAINER_METRIC_NAMES } from '../../trainer/src/metrics/names.js';
import { ensureBinary } from '../harness/binaries.js';
import { createTestNamespace, isApiError, runKubectl, waitFor, waitForGone } from '../harness/k8s-helpers.js';
import {
  DashboardSchema,
  baseMetricName,
  createPrometheusServiceAccount,
  dashboardQueries,
  gmtScrapeJobs,
  metricNamesIn,
  startPrometheus,
  type PrometheusHandle,
  type PrometheusServiceAccount,
} from '../harness/prometheus.js';
import { run } from '../harness/real-node/exec.js';
import { PROJECT_IMAGES } from '../harness/real-node/build-images.js';
import { repoPath } from '../helpers/repo.js';

/** The in-cluster NATS image (built from the pinned nats-server by test/harness/real-node/build-images.ts). */
const NATS_IMAGE = { repository: 'localhost/nats', tag: 'local' };
const KNOWN: ReadonlySet<string> = new Set<string>([...TRAINER_METRIC_NAMES, ...Object.values(OPERATOR_METRIC)]);
const OWN_PREFIXES = ['gmt_', 'controller_runtime_', 'workqueue_', 'leader_election_'];
const RATE_INTERVAL = '20s';
/** Long enough on the real node (2 shared CPUs) for many 1 s scrapes while both ranks train. */
const STEPS = 120;
const JOB = 'prom';

const log = (line: string): void => void process.stderr.write(`[prometheus e2e] ${line}\n`);

interface Env {
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  readonly kubectl: string;
  readonly helm: string;
  readonly helmHome: string;
}
let env: Env | undefined;
let prom: PrometheusHandle | undefined;
let sa: PrometheusServiceAccount | undefined;
let releaseNs: string | undefined;
let jobNs: string | undefined;
let installed = false;

test.before(async () => {
  const kubeconfigPath = process.env['GMT_E2E_KUBECONFIG'];
  if (kubeconfigPath === undefined || kubeconfigPath === '')
    throw new Error(
      `GMT_E2E_KUBECONFIG is not set: this test runs against a cluster; run it through \`npm run test:e2e\` (which provides the real test node), or set GMT_E2E_KUBECONFIG to the kubeconfig of a cluster whose node holds the images ${PROJECT_IMAGES.operator.ref}, ${PROJECT_IMAGES.trainer.ref} and ${NATS_IMAGE.repository}:${NATS_IMAGE.tag} (npm run images) and whose pod IPs this machine reaches`,
    );
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  // All three are built by `npm run setup:binaries` (run by `npm run test:e2e` before ava).
  const kubectl = await ensureBinary('kubectl', { log });
  const helm = await ensureBinary('helm', { log });
  await ensureBinary('prometheus', { log });
  env = { kubeconfigPath, kc, kubectl, helm, helmHome: await mkdtemp(join(tmpdir(), 'gmt-e2e-prom-helm-')) };
});

test.after.always(async () => {
  await prom?.close();
  if (env === undefined) return;
  const e = env;
  // The operator removes its finalizer from the job; it must still run when the job is deleted.
  if (jobNs !== undefined) {
    const api = e.kc.makeApiClient(CustomObjectsApi);
    await api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: jobNs, plural: PLURAL, name: JOB }).catch((err: unknown) => {
      if (!isApiError(err, 404)) log(`deleting GmtFineTune ${jobNs}/${JOB}: ${String(err)}`);
    });
    const ns = jobNs;
    await waitForGone(
      `GmtFineTune ${ns}/${JOB}`,
      () => api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: JOB }),
      120_000,
    ).catch((err: unknown) => log(String(err)));
  }
  if (installed && releaseNs !== undefined)
    await helm(e, ['uninstall', releaseNs, '-n', releaseNs, '--wait', '--timeout', '120s']).catch((err: unknown) => log(String(err)));
  await sa?.remove().catch((err: unknown) => log(`removing Prometheus' ServiceAccount and RBAC: ${String(err)}`));
  const core = e.kc.makeApiClient(CoreV1Api);
  for (const ns of [jobNs, releaseNs])
    if (ns !== undefined) await core.deleteNamespace({ name: ns }).catch((err: unknown) => log(`deleting namespace ${ns}: ${String(err)}`));
  await rm(e.helmHome, { recursive: true, force: true });
});

function need(): Env {
  if (env === undefined) throw new Error('before hook did not run');
  return env;
}

function helm(e: Env, args: readonly string[]): Promise<string> {
  return run(e.helm, args, {
    timeoutMs: 400_000,
    env: {
      ...process.env,
      KUBECONFIG: e.kubeconfigPath,
      HELM_CACHE_HOME: join(e.helmHome, 'cache'),
      HELM_CONFIG_HOME: join(e.helmHome, 'config'),
      HELM_DATA_HOME: join(e.helmHome, 'data'),
    },
  });
}

async function kubectl(e: Env, args: readonly string[]): Promise<string> {
  const r = await runKubectl(e.kubectl, e.kubeconfigPath, args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Pods, their phases and recent events of `ns`, for failure messages. */
async function describeNamespace(e: Env, ns: string): Promise<string> {
  const pods = await kubectl(e, ['-n', ns, 'get', 'pods', '-o', 'wide']).catch(String);
  const events = await kubectl(e, ['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp']).catch(String);
  return `pods in ${ns}:\n${pods}\nevents:\n${events.split('\n').slice(-15).join('\n')}`;
}

/** Replaces Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) by `values`; unknown ones stay. */
function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (all, a?: string, b?: string, c?: string) => values[a ?? b ?? c ?? ''] ?? all);
}

async function installChart(t: ExecutionContext, e: Env, release: string, ns: string, watch: string): Promise<void> {
  // The CRD is applied like the other e2e files do (idempotent, shared by them); the chart would
  // otherwise take ownership of it for this release.
  await kubectl(e, ['apply', '--server-side', '--field-manager=gmt-test', '-f', repoPath(CRD_PATH)]);
  const ext = e.kc.makeApiClient(ApiextensionsV1Api);
  await waitFor(`CRD ${CRD_NAME} Established`, async () => {
    const c = await ext.readCustomResourceDefinition({ name: CRD_NAME });
    return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') === true ? true : undefined;
  });
  const [repo, tag] = PROJECT_IMAGES.operator.ref.split(/:(?=[^:]+$)/);
  const started = Date.now();
  installed = true;
  try {
    await helm(e, [
      'install',
      release,
      repoPath('charts/gmt-operator'),
      '-n',
      ns,
      '--set',
      `image.repository=${repo ?? ''},image.tag=${tag ?? ''},image.pullPolicy=Never`,
      '--set',
      `nats.inCluster.image.repository=${NATS_IMAGE.repository},nats.inCluster.image.tag=${NATS_IMAGE.tag},nats.inCluster.image.pullPolicy=Never`,
      // The node has 2 CPUs shared with the other tests; the chart's NATS requests 500m/512Mi by default.
      '--set',
      'nats.inCluster.resources.requests.cpu=100m,nats.inCluster.resources.requests.memory=64Mi',
      // Only this file's job namespace: other tests' operators reconcile theirs.
      '--set',
      `watchNamespaces={${watch}}`,
      '--set',
      'crds.install=false',
      '--wait',
      '--timeout',
      '240s',
    ]);
  } catch (err) {
    throw new Error(`helm install failed: ${err instanceof Error ? err.message : String(err)}\n${await describeNamespace(e, ns)}`, { cause: err });
  }
  t.log(`chart installed as ${release} in ${ns} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function fineTune(ns: string): GmtFineTuneInput {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'GmtFineTune',
    metadata: { name: JOB, namespace: ns },
    spec: {
      workers: 2,
      image: PROJECT_IMAGES.trainer.ref,
      imagePullPolicy: 'Never',
      resources: { requests: { cpu: '100m', memory: '256Mi' } },
      method: { name: 'gmt', maskRatio: 0.2, maskScope: 'global' },
      dataset: { train: 'synthetic:arithmetic', syntheticTrainSize: 320, syntheticEvalSize: 16 },
      training: { steps: STEPS, seqLen: 32, microBatchSize: 8, evalExamples: 8, evalEvery: 20, maxNewTokens: 4 },
      checkpoint: { interval: 20 },
      runPolicy: { backoffLimit: 0, progressDeadlineSeconds: 300 },
    },
  };
}

test.serial(
  'prometheus - discovers the chart-installed operator and a job’s trainer pods through the API server; every panel of both dashboards returns data',
  async (t) => {
    const e = need();
    const started = Date.now();
    releaseNs = await createTestNamespace(e.kc, 'e2e-prom-sys');
    jobNs = await createTestNamespace(e.kc, 'e2e-prom-jobs');
    const [sys, jobs] = [releaseNs, jobNs];
    await installChart(t, e, sys, sys, jobs);

    sa = await createPrometheusServiceAccount(e.kc, sys, 'prometheus');
    prom = await startPrometheus({
      apiServer: sa.access,
      scrapeJobs: gmtScrapeJobs({ release: sys, releaseNamespace: sys, jobNamespaces: [jobs] }),
      scrapeIntervalSeconds: 1,
      log: (l) => t.log(`[prometheus] ${l}`),
    });
    const p = prom;
    const describe = async (): Promise<string> =>
      `targets: ${JSON.stringify(await p.targets().catch(String))}\nprometheus log tail:\n${await p.logTail(10)}\n${await describeNamespace(e, jobs)}`;

    // Discovered through the API server: the operator's pod behind the chart's metrics Service.
    const operatorTarget = await waitFor(
      'Prometheus discovers the operator and scrapes it',
      async () => (await p.targets()).find((x) => x.scrapePool === 'gmt-operator' && x.health === 'up'),
      { timeoutMs: 60_000, intervalMs: 500, describe },
    );
    t.is(operatorTarget.labels['namespace'], sys);
    t.regex(operatorTarget.labels['pod'] ?? '', new RegExp(`^${sys}-gmt-operator-`));

    const api = e.kc.makeApiClient(CustomObjectsApi);
    const created = parseGmtFineTune(
      await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: jobs, plural: PLURAL, body: fineTune(jobs) }),
    );
    if (!created.ok) throw new Error(created.error);
    const jobId = computeJobId(created.value);

    // A moment inside the run: both ranks, found by the pod discovery, well into training, after an
    // eval and a checkpoint, each scraped at least 3 times in the rate window (so every panel has had
    // something to show).
    const trainerPods = new Set<string>();
    const inside = await waitFor(
      `Prometheus scrapes both ranks of ${jobId} past step ${STEPS / 4}`,
      async () => {
        for (const x of await p.targets())
          if (x.scrapePool === 'gmt-trainer' && x.health === 'up') trainerPods.add(`${x.labels['namespace'] ?? ''}/${x.labels['pod'] ?? ''}`);
        const now = Date.now() / 1000 - 1;
        const steps = await p.query(`gmt_trainer_step{job="${jobId}"}`, now);
        const scrapes = await p.query(`count_over_time(gmt_trainer_step{job="${jobId}"}[${RATE_INTERVAL}])`, now);
        const ckpt = await p.query(`gmt_trainer_last_checkpoint_step{job="${jobId}"}`, now);
        return steps.length === 2 &&
          steps.every((s) => s.value >= STEPS / 4 && s.value < STEPS) &&
          scrapes.length === 2 &&
          scrapes.every((s) => s.value >= 3) &&
          ckpt.length > 0
          ? now
          : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 500, describe },
    );
    t.log(`trainer targets discovered: ${[...trainerPods].sort().join(', ')}`);
    t.deepEqual([...trainerPods].sort(), [0, 1].map((rank) => `${jobs}/${podName(JOB, 0, rank)}`).sort(), 'trainer targets discovered');

    let done: GmtFineTune | undefined;
    await waitFor(
      `GmtFineTune ${jobs}/${JOB} to finish`,
      async () => {
        const r = parseGmtFineTune(await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: jobs, plural: PLURAL, name: JOB }));
        if (!r.ok) throw new Error(r.error);
        done = r.value;
        return done.status?.phase === 'Succeeded' || done.status?.phase === 'Failed' ? done : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 1000, describe: async () => `${JSON.stringify(done?.status)}\n${await describe()}` },
    );
    t.is(done?.status?.phase, 'Succeeded');
    t.log(`job ${jobId} Succeeded after ${((Date.now() - started) / 1000).toFixed(1)} s; evaluating at ${new Date(inside * 1000).toISOString()}`);

    // The operator's panels are rates over its own counters, which exist for the operator's whole
    // life: evaluated at `inside` when Prometheus holds at least 3 successful operator scrapes in the
    // window there, else at the first later moment that does (a scrape can miss its 1 s timeout under load).
    let candidate = inside;
    const operatorAt = await waitFor(
      'Prometheus holds 3 successful scrapes of the operator in the rate window',
      async () => {
        const at = candidate;
        candidate = Date.now() / 1000 - 1;
        const r = await p.query(`sum_over_time(up{job="gmt-operator"}[${RATE_INTERVAL}])`, at);
        return r.length === 1 && (r[0]?.value ?? 0) >= 3 ? at : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, describe },
    );
    if (operatorAt > inside) t.log(`operator panels evaluated ${(operatorAt - inside).toFixed(1)} s after the moment inside the run`);

    const values = { namespace: jobs, name: JOB, job: jobId, rank: '0|1', __rate_interval: RATE_INTERVAL, __interval: '1s' };
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
  },
);

// A real Prometheus for tests, discovering its targets through the Kubernetes API server
// (kubernetes_sd_configs) the way a Prometheus running in a cluster does. The binary is built from
// Prometheus's Go module by test/harness/binaries.ts (`npm run setup:binaries -- prometheus`), with
// the Kubernetes service discovery compiled in (Debian's prometheus 2.42 package lacks it). Each
// instance is our own process on a free loopback port with a generated config, its API-server
// credentials and its TSDB in one temporary folder, removed on close.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { z } from 'zod';
import { ensureBinary } from './binaries.js';
import { isApiError } from './k8s-helpers.js';
import { ComponentProcess, freePort, httpGet, waitHealthy } from './processes.js';

/** Raised when Prometheus cannot be started or queried; the message says why. */
export class PrometheusError extends Error {
  /** The failure is in `cause`. */
  override readonly name = 'PrometheusError';
}

/** One rule of a scrape job's relabel_configs, in Prometheus's own spelling. */
export interface RelabelRule {
  readonly source_labels?: readonly string[];
  readonly separator?: string;
  readonly regex?: string;
  readonly target_label?: string;
  readonly replacement?: string;
  readonly action?: 'replace' | 'keep' | 'drop' | 'labelmap' | 'labeldrop' | 'labelkeep';
}

/** One scrape job whose targets come from the Kubernetes API (kubernetes_sd_configs). */
export interface KubernetesScrapeJob {
  /** Prometheus job name (the `job` label, unless honorLabels keeps the target's own). */
  readonly job: string;
  /** The discovery role: pods (their declared container ports) or the endpoints of Services. */
  readonly role: 'pod' | 'endpointslice';
  /** Namespaces to discover in. */
  readonly namespaces: readonly string[];
  /** Keep the target's labels on conflict (trainer series carry their own `job`, operator series a job's `namespace`). */
  readonly honorLabels?: boolean;
  /** Which discovered targets to scrape and how to label them. */
  readonly relabel: readonly RelabelRule[];
}

/** How Prometheus reaches and authenticates to the API server. */
export interface ApiServerAccess {
  /** https://host:port */
  readonly server: string;
  /** PEM bundle that signs the API server's serving certificate. */
  readonly caPem: string;
  /** A bearer token (a ServiceAccount's, with the RBAC of createPrometheusServiceAccount). */
  readonly token: string;
}

/** Options of startPrometheus. */
export interface PrometheusOptions {
  readonly apiServer: ApiServerAccess;
  readonly scrapeJobs: readonly KubernetesScrapeJob[];
  /** Scrape interval in seconds; default 1. */
  readonly scrapeIntervalSeconds?: number;
  /** Progress lines (build, start); default stderr. */
  readonly log?: (line: string) => void;
}

/** One sample of an instant query. */
export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One scrape target as /api/v1/targets reports it. */
export interface PromTarget {
  /** The job (scrape pool) it belongs to. */
  readonly scrapePool: string;
  /** Its labels after relabelling. */
  readonly labels: Readonly<Record<string, string>>;
  /** up | down | unknown */
  readonly health: string;
  readonly lastError: string;
}

/** A running Prometheus. */
export interface PrometheusHandle {
  /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  readonly url: string;
  /** The generated prometheus.yml. */
  readonly config: string;
  /** Instant query at `time` (Unix seconds; default now); rejects on a PromQL error. */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** Values of label `name` over all stored series (e.g. `__name__`). */
  labelValues(name: string): Promise<string[]>;
  /** The active scrape targets (those service discovery found and relabelling kept). */
  targets(): Promise<PromTarget[]>;
  /** The last lines of Prometheus' own log. */
  logTail(lines?: number): Promise<string>;
  /** SIGTERM, wait for exit, remove the TSDB and the credentials (idempotent). */
  close(): Promise<void>;
}

const stderrLog = (line: string): void => void process.stderr.write(`[prometheus] ${line}\n`);

/**
 * What a Prometheus needs to discover pods and Service endpoints through the API server (the
 * pod/service/endpoint part of the ClusterRole Prometheus' own examples and Helm charts grant,
 * read-only): get/list/watch of pods, services, endpoints and endpointslices.
 */
const SERVICE_DISCOVERY_RULES = [
  { apiGroups: [''], resources: ['pods', 'services', 'endpoints'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
] as const;

/** A ServiceAccount with SERVICE_DISCOVERY_RULES cluster-wide and a token for it; remove() deletes what was created. */
export interface PrometheusServiceAccount {
  readonly access: ApiServerAccess;
  /** Deletes the ClusterRoleBinding, the ClusterRole and the ServiceAccount (idempotent, ignores missing ones). */
  remove(): Promise<void>;
}

/**
 * Creates ServiceAccount `name` in `namespace`, a ClusterRole and ClusterRoleBinding `<namespace>-<name>`
 * granting it SERVICE_DISCOVERY_RULES (as a Prometheus deployed in the cluster has), and requests a
 * token for it (TokenRequest, valid `tokenSeconds`). The API server address and CA come from `kc`.
 */
export async function createPrometheusServiceAccount(kc: KubeConfig, namespace: string, name: string, tokenSeconds = 3600): Promise<PrometheusServiceAccount> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new PrometheusError('the kubeconfig has no current cluster');
  const caPem =
    cluster.caData !== undefined && cluster.caData !== ''
      ? Buffer.from(cluster.caData, 'base64').toString('utf8')
      : cluster.caFile !== undefined && cluster.caFile !== ''
        ? await readFile(cluster.caFile, 'utf8')
        : undefined;
  if (caPem === undefined)
    throw new PrometheusError(`the kubeconfig's cluster ${cluster.name} has no certificate-authority(-data): Prometheus must verify the API server`);
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const clusterName = `${namespace}-${name}`;
  const labels = { 'app.kubernetes.io/name': 'prometheus', 'gmt.dev/test': 'true' };
  const remove = async (): Promise<void> => {
    const gone = (err: unknown): void => {
      if (!isApiError(err, 404)) throw err;
    };
    await rbac.deleteClusterRoleBinding({ name: clusterName }).catch(gone);
    await rbac.deleteClusterRole({ name: clusterName }).catch(gone);
    await core.deleteNamespacedServiceAccount({ name, namespace }).catch(gone);
  };
  try {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, namespace, labels } } });
    await rbac.createClusterRole({
      body: {
        metadata: { name: clusterName, labels },
        rules: SERVICE_DISCOVERY_RULES.map((r) => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })),
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: clusterName, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterName },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    });
    const tr = await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: tokenSeconds } } });
    const token = tr.status?.token;
    if (token === undefined || token === '') throw new PrometheusError(`TokenRequest for ServiceAccount ${namespace}/${name} returned no token`);
    return { access: { server: cluster.server, caPem, token }, remove };
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}

/**
 * The scrape jobs a user without the Prometheus Operator writes for this project (the chart's
 * ServiceMonitor and PodMonitor say the same): the operator through the endpoints of the chart's
 * `<fullname>-metrics` Service (port `metrics`), and every trainer pod (label gmt.dev/role=worker)
 * on its container port `metrics` while it runs. Both keep the series' own labels (honor_labels):
 * trainer series carry `job` = the GmtFineTune's job id and `rank`, the operator's per-job series
 * the job's `namespace` and `name`; without it Prometheus would rename them exported_job and
 * exported_namespace and the dashboards' selectors would miss them.
 */
export function gmtScrapeJobs(opts: {
  readonly release: string;
  readonly releaseNamespace: string;
  readonly jobNamespaces: readonly string[];
}): KubernetesScrapeJob[] {
  const where: RelabelRule[] = [
    { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
    { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
  ];
  return [
    {
      job: 'gmt-operator',
      role: 'endpointslice',
      namespaces: [opts.releaseNamespace],
      honorLabels: true,
      relabel: [
        {
          source_labels: [
            '__meta_kubernetes_service_label_app_kubernetes_io_name',
            '__meta_kubernetes_service_label_app_kubernetes_io_instance',
            '__meta_kubernetes_service_label_app_kubernetes_io_component',
            '__meta_kubernetes_endpointslice_port_name',
          ],
          regex: `gmt-operator;${opts.release};operator;metrics`,
          action: 'keep',
        },
        ...where,
        { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
      ],
    },
    {
      job: 'gmt-trainer',
      role: 'pod',
      namespaces: [...opts.jobNamespaces],
      honorLabels: true,
      relabel: [
        { source_labels: ['__meta_kubernetes_pod_label_gmt_dev_role', '__meta_kubernetes_pod_container_port_name'], regex: 'worker;metrics', action: 'keep' },
        { source_labels: ['__meta_kubernetes_pod_phase'], regex: 'Succeeded|Failed', action: 'drop' },
        ...where,
      ],
    },
  ];
}

/** Paths of the credential files startPrometheus writes next to the config. */
interface CredentialFiles {
  readonly caFile: string;
  readonly tokenFile: string;
}

/** The prometheus.yml for `jobs` (pure). */
export function buildPrometheusConfig(jobs: readonly KubernetesScrapeJob[], server: string, files: CredentialFiles, intervalSeconds: number): string {
  return stringify({
    global: { scrape_interval: `${intervalSeconds}s`, scrape_timeout: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    scrape_configs: jobs.map((j) => ({
      job_name: j.job,
      honor_labels: j.honorLabels ?? false,
      kubernetes_sd_configs: [
        {
          role: j.role,
          api_server: server,
          namespaces: { names: [...j.namespaces] },
          tls_config: { ca_file: files.caFile },
          authorization: { type: 'Bearer', credentials_file: files.tokenFile },
        },
      ],
      relabel_configs: j.relabel.map((r) => ({ ...r, ...(r.source_labels !== undefined ? { source_labels: [...r.source_labels] } : {}) })),
    })),
  });
}

const ApiResponse = z.object({ status: z.string(), data: z.unknown().optional(), error: z.string().optional(), errorType: z.string().optional() });
const TargetsData = z.object({
  activeTargets: z.array(
    z
      .object({ scrapePool: z.string(), labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string() })
      .loose()
      .transform((t) => ({ scrapePool: t.scrapePool, labels: t.labels, health: t.health, lastError: t.lastError })),
  ),
});
const VectorData = z.object({
  resultType: z.string(),
  result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
});

/** Starts Prometheus (built by binaries.ts) on a free loopback port and waits for /-/ready. */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusHandle> {
  const log = opts.log ?? stderrLog;
  const bin = await ensureBinary('prometheus', { log });
  const dir = await mkdtemp(join(tmpdir(), 'gmt-prometheus-'));
  const files = { caFile: join(dir, 'apiserver-ca.crt'), tokenFile: join(dir, 'token') };
  const config = buildPrometheusConfig(opts.scrapeJobs, opts.apiServer.server, files, opts.scrapeIntervalSeconds ?? 1);
  const configPath = join(dir, 'prometheus.yml');
  let proc: ComponentProcess | undefined;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  try {
    await writeFile(files.caFile, opts.apiServer.caPem, { mode: 0o600 });
    await writeFile(files.tokenFile, opts.apiServer.token, { mode: 0o600 });
    await writeFile(configPath, config);
    const args = [`--config.file=${configPath}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=info'];
    log(`starting ${bin} on ${url} (folder ${dir}), discovering targets through ${opts.apiServer.server}`);
    proc = await ComponentProcess.start('prometheus', bin, args, join(dir, 'prometheus.log'));
    await waitHealthy(proc, `${url}/-/ready`, { timeoutMs: 60_000 });
  } catch (err) {
    await proc?.stop(5000);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const running = proc;

  const api = async (path: string): Promise<unknown> => {
    const res = await httpGet(`${url}${path}`, undefined, 10_000);
    const body = ApiResponse.safeParse(JSON.parse(res.body));
    if (!body.success) throw new PrometheusError(`GET ${path}: unexpected answer (HTTP ${res.status}): ${res.body.slice(0, 300)}`);
    if (body.data.status !== 'success')
      throw new PrometheusError(`GET ${path}: ${body.data.errorType ?? 'error'}: ${body.data.error ?? res.body.slice(0, 300)}`);
    return body.data.data;
  };
  let closing: Promise<void> | undefined;
  return {
    url,
    config,
    async query(expr, time) {
      const q = new URLSearchParams({ query: expr, ...(time !== undefined ? { time: String(time) } : {}) });
      const data = await api(`/api/v1/query?${q.toString()}`);
      const v = VectorData.safeParse(data);
      if (!v.success) throw new PrometheusError(`query ${expr}: expected an instant vector, got ${JSON.stringify(data).slice(0, 200)}`);
      return v.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async labelValues(name) {
      return z.array(z.string()).parse(await api(`/api/v1/label/${encodeURIComponent(name)}/values`));
    },
    async targets() {
      return TargetsData.parse(await api('/api/v1/targets?state=active')).activeTargets;
    },
    logTail: (lines) => running.logTail(lines),
    close() {
      closing ??= (async () => {
        await running.stop(10_000);
        await rm(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

// ---- Grafana dashboards: the PromQL they hold, and the metric names in it ----

/** One PromQL expression of a dashboard: a panel target or a query variable. */
export interface DashboardQuery {
  readonly dashboard: string;
  /** Panel title, or `variable <name>`. */
  readonly where: string;
  readonly expr: string;
  /** True for `label_values(...)` variable queries (not PromQL; see labelValuesMetric). */
  readonly variable: boolean;
}

const Target = z.object({ expr: z.string().optional(), datasource: z.unknown().optional() }).loose();
interface Panel {
  readonly title?: string | undefined;
  readonly type?: string | undefined;
  readonly datasource?: unknown;
  readonly targets?: z.infer<typeof Target>[] | undefined;
  readonly panels?: Panel[] | undefined;
}
const PanelSchema: z.ZodType<Panel> = z.lazy(() =>
  z.object({
    title: z.string().optional(),
    type: z.string().optional(),
    datasource: z.unknown().optional(),
    targets: z.array(Target).optional(),
    panels: z.array(PanelSchema).optional(),
  }),
);
const VariableSchema = z
  .object({
    name: z.string(),
    type: z.string(),
    query: z.union([z.string(), z.object({ query: z.string() }).loose()]).optional(),
    datasource: z.unknown().optional(),
  })
  .loose();

/** The parts of a Grafana dashboard the tests read. */
export const DashboardSchema = z
  .object({
    uid: z.string(),
    title: z.string(),
    schemaVersion: z.number(),
    templating: z.object({ list: z.array(VariableSchema) }),
    panels: z.array(PanelSchema),
  })
  .loose();

/** A parsed dashboard. */
export type Dashboard = z.infer<typeof DashboardSchema>;

/** Every panel, rows' nested panels included (rows themselves are not returned). */
export function dashboardPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  const walk = (ps: readonly Panel[]): void => {
    for (const p of ps) {
      if (p.type !== 'row') out.push(p);
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
}

/** The query text of a variable ('' for non-query variables). */
export function variableQuery(v: Dashboard['templating']['list'][number]): string {
  if (v.type !== 'query' || v.query === undefined) return '';
  return typeof v.query === 'string' ? v.query : v.query.query;
}

/** Every PromQL expression of `d`: panel targets, then query variables. */
export function dashboardQueries(file: string, d: Dashboard): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const p of dashboardPanels(d)) {
    for (const t of p.targets ?? []) {
      if (t.expr !== undefined && t.expr.trim() !== '') out.push({ dashboard: file, where: p.title ?? '(untitled)', expr: t.expr, variable: false });
    }
  }
  for (const v of d.templating.list) {
    const q = variableQuery(v);
    if (q !== '') out.push({ dashboard: file, where: `variable ${v.name}`, expr: q, variable: true });
  }
  return out;
}

// Words that are PromQL syntax, not series names (https://prometheus.io/docs/prometheus/latest/querying/operators/).
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * Metric names used by a PromQL expression (or a Grafana `label_values(metric{…}, label)` query):
 * strings, label matchers, range/subquery brackets, grouping label lists, function names and
 * keywords are removed; what remains are series selectors.
 */
export function metricNamesIn(expr: string): string[] {
  const lv = /^\s*label_values\(\s*(?:([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*,)?\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.exec(expr);
  if (lv !== null) return lv[1] !== undefined ? [lv[1]] : [];
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const word = m[1] ?? '';
    if (m[2] !== undefined || PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

/** `name`, or the histogram it is a series of (`_bucket`, `_sum`, `_count`) if that one is in `known`. */
export function baseMetricName(name: string, known: ReadonlySet<string>): string {
  if (known.has(name)) return name;
  const m = /^(.*)_(?:bucket|sum|count)$/.exec(name);
  return m?.[1] !== undefined && known.has(m[1]) ? m[1] : name;
}

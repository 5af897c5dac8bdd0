// A real Prometheus for tests: found on PATH or at /usr/bin/prometheus, else installed from
// Debian's package (never a reason to skip: docs/testing.md). Each instance is our own process on
// a free loopback port with a generated config and its own TSDB in a temporary folder; a system
// service the package may have started is never used.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { ComponentProcess, freePort, httpGet, waitHealthy } from './processes.js';

/** Raised when Prometheus cannot be found, installed or queried; the message says why. */
export class PrometheusError extends Error {
  /** The failure is in `cause`. */
  override readonly name = 'PrometheusError';
}

/** One static scrape job. */
export interface ScrapeJob {
  /** Prometheus job name (becomes the `job` label unless honorLabels keeps the target's own). */
  readonly job: string;
  /** host:port of each target. */
  readonly targets: readonly string[];
  /** Keep the target's labels on conflict (trainer series carry their own `job` label). */
  readonly honorLabels?: boolean;
}

/** Options of startPrometheus. */
export interface PrometheusOptions {
  readonly scrapeJobs: readonly ScrapeJob[];
  /** Scrape interval in seconds; default 1. */
  readonly scrapeIntervalSeconds?: number;
  /** Progress lines (install, start); default stderr. */
  readonly log?: (line: string) => void;
}

/** One sample of an instant query. */
export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
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
  /** The last lines of Prometheus' own log. */
  logTail(lines?: number): Promise<string>;
  /** SIGTERM, wait for exit, remove the TSDB (idempotent). */
  close(): Promise<void>;
}

const stderrLog = (line: string): void => void process.stderr.write(`[prometheus] ${line}\n`);

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first `prometheus` on PATH, or /usr/bin/prometheus; undefined if neither exists. */
export async function findPrometheus(): Promise<string | undefined> {
  const override = process.env['GMT_PROMETHEUS_BINARY'];
  if (override !== undefined && override !== '') return override;
  for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '')) {
    if (await executable(join(dir, 'prometheus'))) return join(dir, 'prometheus');
  }
  return (await executable('/usr/bin/prometheus')) ? '/usr/bin/prometheus' : undefined;
}

function run(cmd: string, args: readonly string[], log: (line: string) => void): Promise<{ code: number; tail: string }> {
  log(`running: ${cmd} ${args.join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    let out = '';
    const keep = (c: Buffer): void => void (out = (out + c.toString('utf8')).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => resolve({ code: -1, tail: err.message }));
    child.on('exit', (code) => resolve({ code: code ?? -1, tail: out }));
  });
}

let installing: Promise<string> | undefined;

/**
 * Path of a Prometheus binary. Only the setup step (`npm run setup:binaries`, which says so first)
 * installs Debian's `prometheus` package system-wide (`install: true`); a test that finds none fails
 * with the command to run.
 */
export function ensurePrometheus(log: (line: string) => void = stderrLog, opts: { install?: boolean } = {}): Promise<string> {
  installing ??= (async () => {
    const found = await findPrometheus();
    if (found !== undefined) return found;
    if (opts.install !== true)
      throw new PrometheusError(
        "prometheus is not installed (not on PATH, not /usr/bin/prometheus): run `npm run setup:binaries -- prometheus`, which installs Debian's prometheus package with apt-get, or set GMT_PROMETHEUS_BINARY",
      );
    log(
      'prometheus not found on PATH or at /usr/bin/prometheus; installing Debian package "prometheus" system-wide (apt-get update && apt-get install prometheus)',
    );
    const update = await run('apt-get', ['update'], log);
    if (update.code !== 0) throw new PrometheusError(`apt-get update failed (exit ${update.code}):\n${update.tail}`);
    const install = await run('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], log);
    if (install.code !== 0) throw new PrometheusError(`apt-get install -y prometheus failed (exit ${install.code}):\n${install.tail}`);
    const after = await findPrometheus();
    if (after === undefined) throw new PrometheusError('apt-get installed "prometheus" but no prometheus binary is on PATH or at /usr/bin/prometheus');
    log(`installed ${after}`);
    return after;
  })();
  installing.catch(() => (installing = undefined));
  return installing;
}

/** The prometheus.yml for `jobs` (pure). */
export function buildPrometheusConfig(jobs: readonly ScrapeJob[], intervalSeconds: number): string {
  return stringify({
    global: { scrape_interval: `${intervalSeconds}s`, scrape_timeout: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    scrape_configs: jobs.map((j) => ({
      job_name: j.job,
      honor_labels: j.honorLabels ?? false,
      static_configs: [{ targets: [...j.targets] }],
    })),
  });
}

const ApiResponse = z.object({ status: z.string(), data: z.unknown().optional(), error: z.string().optional(), errorType: z.string().optional() });
const VectorData = z.object({
  resultType: z.string(),
  result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
});

/** Starts Prometheus on a free loopback port and waits for /-/ready. */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusHandle> {
  const log = opts.log ?? stderrLog;
  const bin = await ensurePrometheus(log);
  const dir = await mkdtemp(join(tmpdir(), 'gmt-prometheus-'));
  const config = buildPrometheusConfig(opts.scrapeJobs, opts.scrapeIntervalSeconds ?? 1);
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(configPath, config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${configPath}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--web.enable-lifecycle',
    '--log.level=info',
  ];
  log(`starting ${bin} on ${url} (tsdb ${dir})`);
  const proc = await ComponentProcess.start('prometheus', bin, args, join(dir, 'prometheus.log'));
  try {
    await waitHealthy(proc, `${url}/-/ready`, { timeoutMs: 60_000 });
  } catch (err) {
    await proc.stop(5000);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

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
    logTail: (lines) => proc.logTail(lines),
    close() {
      closing ??= (async () => {
        await proc.stop(10_000);
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

// Dashboards use only metric names that exist (docs/architecture.md §4): every PromQL expression of every panel
// and variable of dashboards/*.json is tokenized and each series name must be defined by the
// trainer's or the operator's names.ts. Also: every panel queries the ${datasource} variable and
// every $variable used is defined. The e2e counterpart (test/e2e/prometheus.test.ts) runs them.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { METRIC as OPERATOR_METRIC } from '../../operator/src/metrics/names.js';
import { METRIC_NAMES as TRAINER_METRIC_NAMES } from '../../trainer/src/metrics/names.js';
import { DashboardSchema, baseMetricName, dashboardPanels, dashboardQueries, metricNamesIn, type Dashboard } from '../harness/prometheus.js';
import { repoPath } from '../helpers/repo.js';

const KNOWN: ReadonlySet<string> = new Set<string>([...TRAINER_METRIC_NAMES, ...Object.values(OPERATOR_METRIC)]);
const FILES = readdirSync(repoPath('dashboards'))
  .filter((f) => f.endsWith('.json'))
  .sort();

function load(file: string): Dashboard {
  return DashboardSchema.parse(JSON.parse(readFileSync(repoPath('dashboards', file), 'utf8')));
}

/** Grafana's built-in variables (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#global-variables). */
const BUILTIN_VARIABLES = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms', '__dashboard', '__from', '__to']);

function variablesUsed(text: string): string[] {
  return [...text.matchAll(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

const extractionCases: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['gmt_trainer_loss{job="$job", rank=~"$rank"}', ['gmt_trainer_loss']],
  ['sum(rate(gmt_trainer_samples_total{job="$job"}[$__rate_interval]))', ['gmt_trainer_samples_total']],
  ['histogram_quantile(0.99, sum by (le) (rate(controller_runtime_reconcile_time_seconds_bucket[5m])))', ['controller_runtime_reconcile_time_seconds_bucket']],
  ['sum by (phase, direction) (rate(x_total{phase="a(b)"}[1m])) / on (phase) group_left y', ['x_total', 'y']],
  ['a / b offset 5m and c or d unless e > bool 1e3', ['a', 'b', 'c', 'd', 'e']],
  ['max without (instance) (up)', ['up']],
  ['label_values(gmt_operator_job_phase{namespace="$namespace"}, name)', ['gmt_operator_job_phase']],
  ['label_values(namespace)', []],
];

for (const [expr, want] of extractionCases) {
  test(`dashboards - metricNamesIn ${expr}`, (t) => {
    t.deepEqual(metricNamesIn(expr).sort(), [...want].sort());
  });
}

test('dashboards - baseMetricName strips histogram suffixes only for known histograms', (t) => {
  const known = new Set(['a_seconds', 'b_total']);
  t.is(baseMetricName('a_seconds_bucket', known), 'a_seconds');
  t.is(baseMetricName('a_seconds_count', known), 'a_seconds');
  t.is(baseMetricName('b_total', known), 'b_total');
  t.is(baseMetricName('c_bucket', known), 'c_bucket');
});

test('dashboards - both dashboards exist', (t) => {
  t.deepEqual(FILES, ['gmt-operator.json', 'gmt-training.json']);
});

for (const file of FILES) {
  test(`dashboards - ${file} parses, schemaVersion >= 36, has its variables`, (t) => {
    const d = load(file);
    t.true(d.schemaVersion >= 36);
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    t.is(vars.get('datasource')?.type, 'datasource');
    t.is(vars.get('datasource')?.['query'], 'prometheus');
    const want = file === 'gmt-training.json' ? ['namespace', 'name', 'job', 'rank'] : ['namespace', 'name'];
    for (const name of want) t.is(vars.get(name)?.type, 'query', `variable ${name}`);
    t.true(dashboardPanels(d).length > 0);
  });

  test(`dashboards - ${file} uses only metric names the trainer or operator defines`, (t) => {
    const unknown: string[] = [];
    const queries = dashboardQueries(file, load(file));
    t.true(queries.length > 0);
    for (const q of queries) {
      const names = metricNamesIn(q.expr);
      if (!q.variable && names.length === 0) unknown.push(`${q.where}: no metric in ${q.expr}`);
      for (const n of names) if (!KNOWN.has(baseMetricName(n, KNOWN))) unknown.push(`${q.where}: ${n} (in ${q.expr})`);
    }
    t.deepEqual(unknown, []);
  });

  test(`dashboards - ${file} panels and targets use the \${datasource} variable`, (t) => {
    const d = load(file);
    const bad: string[] = [];
    const isVar = (ds: unknown): boolean =>
      typeof ds === 'object' &&
      ds !== null &&
      (ds as Record<string, unknown>)['uid'] === '${datasource}' &&
      (ds as Record<string, unknown>)['type'] === 'prometheus';
    for (const p of dashboardPanels(d)) {
      if (!isVar(p.datasource)) bad.push(`panel ${p.title ?? '?'}`);
      for (const [i, tg] of (p.targets ?? []).entries()) if (!isVar(tg.datasource)) bad.push(`panel ${p.title ?? '?'} target ${i}`);
    }
    for (const v of d.templating.list) if (v.type === 'query' && !isVar(v.datasource)) bad.push(`variable ${v.name}`);
    t.deepEqual(bad, []);
  });

  test(`dashboards - ${file} uses only defined variables`, (t) => {
    const d = load(file);
    const defined = new Set(d.templating.list.map((v) => v.name));
    const texts = [
      ...dashboardQueries(file, d).map((q) => q.expr),
      ...d.templating.list.map((v) => (typeof v['regex'] === 'string' ? v['regex'] : '')),
      ...dashboardPanels(d).map((p) => JSON.stringify(p.datasource ?? '')),
    ];
    const missing = texts.flatMap(variablesUsed).filter((v) => !defined.has(v) && !BUILTIN_VARIABLES.has(v));
    t.deepEqual([...new Set(missing)], []);
  });
}

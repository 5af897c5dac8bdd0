// The chart's copies (CRD, Grafana dashboards) equal their sources; `npm run sync:chart` fixes drift.

import test from 'ava';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderCrdYaml } from '../../operator/src/api/index.js';
import { CHART_CRD_FILE, CHART_DASHBOARDS_DIR, chartDrift, syncChart } from '../../scripts/sync-chart.js';
import { REPO_ROOT } from '../helpers/repo.js';

test('chart sync - the chart copies of the CRD and of dashboards/*.json are up to date', async (t) => {
  const drift = await chartDrift(REPO_ROOT);
  t.deepEqual(
    drift.map((d) => d.path),
    [],
    'the chart copies are out of date: run `npm run sync:chart` and commit the result',
  );
});

test('chart sync - reports and fixes a stale CRD, a changed/new dashboard and a removed one', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'gmt-chart-sync-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'dashboards'), { recursive: true });
  await mkdir(join(root, CHART_DASHBOARDS_DIR), { recursive: true });
  await writeFile(join(root, 'dashboards', 'a.json'), '{"title":"A"}');
  await writeFile(join(root, 'dashboards', 'notes.txt'), 'not a dashboard');
  await writeFile(join(root, CHART_DASHBOARDS_DIR, 'gone.json'), '{}');
  const before = await chartDrift(root);
  t.deepEqual(
    before.map((d) => [d.path, d.want === null]).sort(),
    [
      [CHART_CRD_FILE, false],
      [`${CHART_DASHBOARDS_DIR}/a.json`, false],
      [`${CHART_DASHBOARDS_DIR}/gone.json`, true],
    ].sort(),
  );
  await syncChart(root);
  t.deepEqual(await chartDrift(root), []);
  t.is(await readFile(join(root, CHART_CRD_FILE), 'utf8'), renderCrdYaml());
  t.is(await readFile(join(root, CHART_DASHBOARDS_DIR, 'a.json'), 'utf8'), '{"title":"A"}');
  await writeFile(join(root, 'dashboards', 'a.json'), '{"title":"A2"}');
  t.deepEqual(
    (await chartDrift(root)).map((d) => d.path),
    [`${CHART_DASHBOARDS_DIR}/a.json`],
  );
});

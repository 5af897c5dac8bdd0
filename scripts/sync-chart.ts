// npm run sync:chart — keeps the Helm chart's copies equal to their sources (helm cannot read files
// outside the chart):
//   - charts/gmt-operator/files/crd/gmt.dev_gmtfinetunes.yaml ← the generated CRD (renderCrdYaml,
//     the same bytes `npm run gen:crd` writes to crds/); templates/crd.yaml renders it.
//   - charts/gmt-operator/dashboards/*.json ← dashboards/*.json (stale copies are removed);
//     templates/dashboards.yaml turns each into a grafana_dashboard ConfigMap.
// test/unit/chart-sync.test.ts fails on drift until this is rerun.

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { renderCrdYaml } from '../operator/src/api/index.js';

/** Chart folder, relative to the repository root. */
export const CHART_DIR = 'charts/gmt-operator';
/** The chart's copy of the CRD (not in crds/: see the chart README). */
export const CHART_CRD_FILE = `${CHART_DIR}/files/crd/gmt.dev_gmtfinetunes.yaml`;
export const DASHBOARDS_DIR = 'dashboards';
export const CHART_DASHBOARDS_DIR = `${CHART_DIR}/dashboards`;

/** One difference between the chart and its sources. */
export interface ChartDrift {
  /** Path relative to the repository root. */
  readonly path: string;
  /** What the file must contain; null: it must not exist. */
  readonly want: string | null;
}

async function jsonFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
}

/** Every file whose content differs from what the sync would write (empty: in sync). */
export async function chartDrift(root: string): Promise<ChartDrift[]> {
  const want = new Map<string, string | null>([[CHART_CRD_FILE, renderCrdYaml()]]);
  for (const f of await jsonFiles(join(root, DASHBOARDS_DIR))) want.set(`${CHART_DASHBOARDS_DIR}/${f}`, await readFile(join(root, DASHBOARDS_DIR, f), 'utf8'));
  for (const f of await jsonFiles(join(root, CHART_DASHBOARDS_DIR)))
    if (!want.has(`${CHART_DASHBOARDS_DIR}/${f}`)) want.set(`${CHART_DASHBOARDS_DIR}/${f}`, null);
  const out: ChartDrift[] = [];
  for (const [path, content] of want) {
    const have = await readFile(join(root, path), 'utf8').catch(() => null);
    if (have !== content) out.push({ path, want: content });
  }
  return out;
}

/** Writes (or removes) what chartDrift reports; returns it. */
export async function syncChart(root: string): Promise<ChartDrift[]> {
  const drift = await chartDrift(root);
  for (const d of drift) {
    const abs = join(root, d.path);
    if (d.want === null) {
      await rm(abs, { force: true });
    } else {
      await mkdir(dirname(abs), { recursive: true });
      await writeFile(abs, d.want);
    }
  }
  return drift;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const done = await syncChart(root);
  for (const d of done) process.stdout.write(`${d.want === null ? 'removed' : 'wrote'} ${d.path}\n`);
  if (done.length === 0) process.stdout.write('chart already in sync\n');
}

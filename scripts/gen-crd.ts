// npm run gen:crd — writes the GmtFineTune CRD generated from operator/src/api/ to crds/, and to
// the Helm chart's crds/ folder when the chart has one. The drift test fails until this is rerun.

import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHART_CRD_PATH, CRD_PATH, renderCrdYaml } from '../operator/src/api/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const yaml = renderCrdYaml();
const targets = [CRD_PATH, ...(existsSync(join(root, dirname(CHART_CRD_PATH))) ? [CHART_CRD_PATH] : [])];
for (const rel of targets) {
  await mkdir(dirname(join(root, rel)), { recursive: true });
  await writeFile(join(root, rel), yaml);
  process.stdout.write(`wrote ${rel} (${yaml.length} bytes)\n`);
}

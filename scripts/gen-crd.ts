// npm run gen:crd — writes the GmtFineTune CRD generated from operator/src/api/ to crds/. The drift
// test fails until this is rerun; `npm run sync:chart` copies it into the Helm chart (files/crd/).

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRD_PATH, renderCrdYaml } from '../operator/src/api/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const yaml = renderCrdYaml();
await mkdir(dirname(join(root, CRD_PATH)), { recursive: true });
await writeFile(join(root, CRD_PATH), yaml);
process.stdout.write(`wrote ${CRD_PATH} (${yaml.length} bytes)\n`);

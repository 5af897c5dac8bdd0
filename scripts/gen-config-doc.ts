// npm run gen:config-doc — writes docs/config.md, the table of the trainer's configuration keys
// rendered from contract/config.ts (the test describe.test.ts fails until this is rerun).

import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderConfigDoc } from '../trainer/src/config/describe.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const text = renderConfigDoc();
await writeFile(join(root, 'docs', 'config.md'), text);
process.stdout.write(`wrote docs/config.md (${text.length} bytes)\n`);

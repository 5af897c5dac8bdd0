// The import boundaries of eslint.config.js fail on the imports they forbid and pass the allowed
// ones: ESLint lints fixture sources as if they were files at the given paths.

import test from 'ava';
import { pathToFileURL } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { repoPath } from '../../helpers/repo.js';

interface ConfigModule {
  readonly default: readonly Linter.Config[];
  readonly importBoundaries: readonly Linter.Config[];
}

const config = (await import(pathToFileURL(repoPath('eslint.config.js')).href)) as ConfigModule;

/** An ESLint with only the boundary rules (no type information needed for fixture text). */
const eslint = new ESLint({
  cwd: repoPath(),
  overrideConfigFile: true,
  overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...config.importBoundaries],
});

async function boundaryErrors(filePath: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: repoPath(filePath) });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
}

test('lint - the repository config includes the import boundaries', (t) => {
  for (const block of config.importBoundaries) t.true(config.default.includes(block), JSON.stringify(block.files));
});

const bad: readonly { readonly file: string; readonly source: string; readonly why: string }[] = [
  { file: 'trainer/src/launcher.ts', source: "import { ensureBinary } from '../../test/harness/binaries.js';\n", why: 'production code never imports test/' },
  { file: 'trainer/src/collective/nats/x.ts', source: "export { x } from '../../../../test/helpers/repo.js';\n", why: 'production code never imports test/' },
  {
    file: 'operator/src/controller/policy.ts',
    source: "import { EXIT_CODES } from '../../../trainer/src/errors.js';\n",
    why: 'import the trainer↔operator contract from contract/',
  },
  {
    file: 'operator/src/main.ts',
    source: "import type { TrainerConfig } from '../../trainer/src/config/load.js';\n",
    why: 'import the trainer↔operator contract from contract/',
  },
  { file: 'operator/src/api/spec.ts', source: "import { repoPath } from '../../../test/helpers/repo.js';\n", why: 'production code never imports test/' },
  { file: 'contract/env.ts', source: "import { ConfigError } from '../trainer/src/errors.js';\n", why: 'import the trainer↔operator contract from contract/' },
  {
    file: 'contract/progress.ts',
    source: "import { LABELS } from '../operator/src/api/index.js';\n",
    why: 'the trainer and the contract never import operator/',
  },
  {
    file: 'trainer/src/main.ts',
    source: "import { LABELS } from '../../operator/src/api/index.js';\n",
    why: 'the trainer and the contract never import operator/',
  },
];

for (const c of bad) {
  test(`lint - ${c.file} importing ${c.source.match(/'([^']+)'/)?.[1] ?? ''} fails`, async (t) => {
    const errors = await boundaryErrors(c.file, c.source);
    t.is(errors.length, 1, errors.join('\n'));
    t.true(errors[0]?.startsWith('no-restricted-imports: ') === true && errors[0].includes(c.why), errors.join('\n'));
  });
}

const good: readonly { readonly file: string; readonly source: string }[] = [
  {
    file: 'operator/src/controller/policy.ts',
    source: "import { EXIT_CODES } from '../../../contract/exit-codes.js';\nimport { LABELS } from '../api/index.js';\n",
  },
  { file: 'trainer/src/launcher.ts', source: "import { ENV } from '../../contract/env.js';\nimport { findNatsServer } from './collective/nats/index.js';\n" },
  { file: 'contract/env.ts', source: "import type { ConfigKey } from './config.js';\nimport { z } from 'zod';\n" },
  { file: 'test/unit/x.test.ts', source: "import { repoPath } from '../helpers/repo.js';\nimport { ENV } from '../../trainer/src/config/load.js';\n" },
  { file: 'scripts/x.ts', source: "import { ensureBinary } from '../test/harness/binaries.js';\n" },
];

for (const c of good) {
  test(`lint - ${c.file} with allowed imports passes`, async (t) => {
    t.deepEqual(await boundaryErrors(c.file, c.source), []);
  });
}

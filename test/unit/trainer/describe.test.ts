import test from 'ava';
import { readFile } from 'node:fs/promises';
import { configKeys } from '../../../trainer/src/config/load.js';
import { fieldDoc, fieldDocs, helpText, renderConfigDoc } from '../../../trainer/src/config/describe.js';
import { GmtFineTuneSpecSchema } from '../../../operator/src/api/spec.js';
import { buildCrd } from '../../../operator/src/api/crd.js';
import { runCli } from '../../helpers/cli.js';
import { repoPath } from '../../helpers/repo.js';

test('describe - every config key has a meaning, and ranges and defaults come from the schema', (t) => {
  t.deepEqual(
    fieldDocs().map((d) => d.key),
    [...configKeys()],
  );
  for (const d of fieldDocs()) t.true(d.meaning.length > 5, d.key);
  const cases = [
    { key: 'maskRatio', range: 'number 0 ≤ x < 1', def: '0.2' },
    { key: 'steps', range: 'integer 1 ≤ x ≤ 100_000_000', def: '300' },
    { key: 'lr', range: 'number 0 < x ≤ 10', def: '0.001' },
    { key: 'method', range: 'gmt|sft|random|hft|oneoff', def: '"gmt"' },
    { key: 'evalEvery', range: 'integer ≥ 0', def: '0' },
    { key: 'evalData', range: 'text', def: undefined },
  ] as const;
  for (const c of cases) {
    const d = fieldDoc(c.key);
    t.is(d.range, c.range, c.key);
    t.is(d.default, c.def, c.key);
  }
  t.is(helpText(fieldDoc('maskRatio')), 'fraction of entries dropped per scope (the paper uses 0.1-0.4) [number 0 ≤ x < 1; default 0.2]');
});

test('describe - gmt-train --help shows each option with its meaning, range and default', async (t) => {
  const r = await runCli(['--help']);
  t.is(r.code, 0, r.stderr);
  const flat = r.stdout.replace(/\n\s+/g, ' ');
  for (const d of fieldDocs()) t.true(flat.includes(`${d.flag} <value>`) && flat.includes(helpText(d)), `${d.flag}: ${helpText(d)}`);
  for (const sub of ['pretrain', 'generate', 'eval']) t.regex(r.stdout, new RegExp(`^  ${sub}\\b`, 'm'));
});

test('describe - the CRD carries the same meanings as the trainer schema, and spec itself is described', (t) => {
  const spec = (
    buildCrd()['spec'] as {
      versions: Array<{
        schema: {
          openAPIV3Schema: {
            properties: Record<
              string,
              { description?: string; properties: Record<string, { description?: string; properties: Record<string, { description?: string }> }> }
            >;
          };
        };
      }>;
    }
  ).versions[0]!.schema.openAPIV3Schema.properties['spec']!;
  t.truthy(spec.description);
  t.is(spec.properties['method']!.properties['maskRatio']!.description, fieldDoc('maskRatio').meaning);
  t.is(spec.properties['training']!.properties['steps']!.description, fieldDoc('steps').meaning);
  t.truthy(GmtFineTuneSpecSchema.description);
});

test('describe - docs/config.md is the rendered table (npm run gen:config-doc)', async (t) => {
  t.is(await readFile(repoPath('docs/config.md'), 'utf-8'), renderConfigDoc());
});

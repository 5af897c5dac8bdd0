// The CRD generated from the zod schemas: no drift from the committed file, structural, and its
// bounds agree with the trainer's config schema.

import test from 'ava';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { TrainerConfigSchema } from '../../../contract/config.js';
import {
  buildCrd,
  buildResourceSchema,
  CRD_PATH,
  renderCrdYaml,
  toStructuralSchema,
  SchemaConversionError,
  type JsonValue,
  type OpenApiSchema,
} from '../../../operator/src/api/index.js';
import { SPEC_TO_TRAINER_KEY } from '../../../contract/spec-to-config.js';
import { repoPath } from '../../helpers/repo.js';

const FIX = 'the CRD is generated from operator/src/api/: run `npm run gen:crd` and commit the result';

test('api crd - the committed CRD equals the generated one byte for byte', async (t) => {
  const committed = await readFile(repoPath(CRD_PATH), 'utf8').catch(() => '');
  t.true(committed === renderCrdYaml(), `${CRD_PATH} is out of date: ${FIX}`);
});

test('api crd - generation is deterministic', (t) => {
  t.is(renderCrdYaml(), renderCrdYaml());
});

/** Every node of the schema, with its path. */
function* nodes(s: OpenApiSchema, path: string): Generator<[string, OpenApiSchema]> {
  yield [path, s];
  const props = s['properties'];
  if (typeof props === 'object' && props !== null && !Array.isArray(props)) {
    for (const [k, v] of Object.entries(props)) yield* nodes(v as OpenApiSchema, `${path}.${k}`);
  }
  for (const key of ['items', 'additionalProperties'] as const) {
    const v = s[key];
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) yield* nodes(v, `${path}${key === 'items' ? '[]' : '.*'}`);
  }
}

test('api crd - the schema is structural: a type on every node, no additionalProperties: false, anyOf only for int-or-string', (t) => {
  for (const [path, n] of nodes(buildResourceSchema(), '')) {
    t.true(n['type'] !== undefined || n['x-kubernetes-int-or-string'] === true, `${path} has a type`);
    t.not(n['additionalProperties'], false, `${path}: additionalProperties false`);
    if (n['anyOf'] !== undefined) t.is(n['x-kubernetes-int-or-string'], true, `${path}: anyOf only for int-or-string`);
    t.is(n['$ref'], undefined, `${path}: no $ref`);
  }
});

test('api crd - names, status subresource, printer columns and CEL rules', (t) => {
  const crd = buildCrd() as { spec: { names: Record<string, JsonValue>; scope: string; versions: { [k: string]: JsonValue }[] } };
  t.deepEqual(crd.spec.names, {
    kind: 'GmtFineTune',
    listKind: 'GmtFineTuneList',
    plural: 'gmtfinetunes',
    singular: 'gmtfinetune',
    shortNames: ['gft'],
    categories: ['gmt', 'all'],
  });
  t.is(crd.spec.scope, 'Namespaced');
  const v = crd.spec.versions[0]!;
  t.deepEqual(v['subresources'], { status: {} });
  const cols = (v['additionalPrinterColumns'] as { name: string; priority?: number }[]).filter((c) => c.priority === undefined).map((c) => c.name);
  t.deepEqual(cols, ['Phase', 'Progress', 'Loss', 'Exact-Match', 'Restarts', 'Reason', 'Age']);
  const yaml = renderCrdYaml();
  for (const field of [
    'metadata.name',
    'spec.workers',
    'spec.method',
    'spec.checkpoint.volume',
    'spec.optimizer.momentum',
    'spec.resources.limits',
    'spec.runPolicy.managedBy',
    'spec.podTemplate.tolerations[].value',
  ]) {
    t.regex(yaml, new RegExp(`message: "?${field.replace(/[.[\]]/g, '\\$&')} `), `a CEL message names ${field}`);
  }
});

test('api crd - the converter rejects what a structural schema cannot express', (t) => {
  t.throws(() => toStructuralSchema(z.object({ a: z.union([z.string(), z.object({ b: z.string() })]) })), {
    instanceOf: SchemaConversionError,
    message: /<root>\.a: unions/,
  });
  t.throws(() => toStructuralSchema(z.object({ a: z.unknown() })), { instanceOf: SchemaConversionError, message: /<root>\.a: every node .* needs a type/ });
});

// ---- agreement with the trainer (contract/config.ts) ---------------------------------------

const BOUNDS = ['type', 'enum', 'default', 'minimum', 'exclusiveMinimum', 'maximum', 'exclusiveMaximum'] as const;

function specNode(path: string): OpenApiSchema {
  let n = (buildResourceSchema()['properties'] as Record<string, OpenApiSchema>)['spec']!;
  for (const part of path.split('.')) n = (n['properties'] as Record<string, OpenApiSchema>)[part]!;
  return n;
}

test('api crd - every spec field that reaches the trainer has the trainer’s type, enum, default and bounds', (t) => {
  const trainer = toStructuralSchema(TrainerConfigSchema, 'trainer')['properties'] as Record<string, OpenApiSchema>;
  // Deliberate differences: spec patterns are stricter than the trainer's non-empty strings.
  const stricter: Record<string, readonly string[]> = { 'model.source': ['minLength'], 'dataset.train': ['minLength'], 'dataset.eval': ['minLength'] };
  for (const [specPath, key] of Object.entries(SPEC_TO_TRAINER_KEY)) {
    const s = specNode(specPath);
    const tr = trainer[key];
    t.truthy(tr, `trainer key ${key}`);
    if (tr === undefined) continue;
    for (const b of BOUNDS) {
      if ((stricter[specPath] ?? []).includes(b)) continue;
      t.deepEqual(s[b], tr[b], `spec.${specPath} ${b} agrees with trainer ${key}`);
    }
  }
});

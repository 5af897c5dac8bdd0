// No cycles between the modules of production code: each folder directly under trainer/src/ and
// operator/src/ (with its subfolders) is one module, each file directly there is its own, and
// contract/ is one. The layering (docs/architecture.md §1) is a DAG, e.g. the updater (update/)
// sits below the collective (collective/), which sits below the training loop (train/).

import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO_ROOT, repoPath } from '../../helpers/repo.js';

const ROOTS = ['trainer/src', 'operator/src', 'contract'] as const;

function sources(dir: string): string[] {
  return readdirSync(repoPath(dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The module of a repository-relative file: contract, a root file, or trainer/src/<folder>. */
function moduleOf(file: string): string {
  if (file.startsWith('contract/')) return 'contract';
  for (const root of ROOTS) {
    if (!file.startsWith(`${root}/`)) continue;
    const rest = file.slice(root.length + 1).split('/');
    return rest.length === 1 ? file : `${root}/${rest[0]!}`;
  }
  return file;
}

/** Relative import specifiers of a TypeScript source (static, re-export and dynamic). */
function relativeImports(source: string): string[] {
  return [...source.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
}

/** Edges between modules of the production sources. */
function moduleGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of ROOTS.flatMap((r) => sources(r))) {
    const from = moduleOf(file);
    for (const spec of relativeImports(readFileSync(repoPath(file), 'utf8'))) {
      const to = moduleOf(relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), spec)).replace(/\.js$/, '.ts'));
      if (to === from) continue;
      const out = graph.get(from) ?? new Set<string>();
      out.add(to);
      graph.set(from, out);
    }
  }
  return graph;
}

/** Strongly connected components with more than one node (Tarjan): each is a cycle. */
function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) found.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('lint - the cycle finder reports a module cycle and passes a DAG', (t) => {
  const g = (edges: Array<[string, string]>) => new Map(edges.map(([a, b]) => [a, new Set([b])]));
  t.deepEqual(
    cycles(
      g([
        ['a', 'b'],
        ['b', 'c'],
        ['c', 'a'],
      ]),
    ),
    [['a', 'b', 'c']],
  );
  t.deepEqual(
    cycles(
      g([
        ['a', 'b'],
        ['b', 'c'],
      ]),
    ),
    [],
  );
  t.deepEqual(moduleOf('trainer/src/collective/nats/wire.ts'), 'trainer/src/collective');
  t.deepEqual(moduleOf('trainer/src/errors.ts'), 'trainer/src/errors.ts');
  t.deepEqual(relativeImports("import { a } from '../x/y.js';\nexport { b } from './z.js';\nimport 'zod';\nawait import('./w.js');"), [
    '../x/y.js',
    './z.js',
    './w.js',
  ]);
});

test('lint - production modules import each other without cycles', (t) => {
  const graph = moduleGraph();
  t.true(graph.get('trainer/src/collective')?.has('trainer/src/update'), 'the collective imports the updater');
  t.deepEqual(cycles(graph), []);
});

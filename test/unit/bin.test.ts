/**
 * The bin/ launchers (`gmt-train`, `gmt-operator`): they run the programs on Node ≥ 24 and name the
 * version needed on an older Node; run from a copy without a build, they say what to run.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoPath } from '../helpers/repo.js';

async function nodeProblemFn(): Promise<(version: string) => string | undefined> {
  const m: unknown = await import(pathToFileURL(repoPath('bin', 'project-node.js')).href);
  if (typeof m !== 'object' || m === null || !('nodeProblem' in m) || typeof m.nodeProblem !== 'function')
    throw new Error('bin/project-node.js exports no nodeProblem');
  const f = m.nodeProblem as (version: string) => unknown;
  return (v) => {
    const r = f(v);
    return typeof r === 'string' ? r : undefined;
  };
}

test('bin - Node 24 and newer run the programs; older versions get one line naming the version needed', async (t) => {
  const nodeProblem = await nodeProblemFn();
  t.is(nodeProblem('24.21.0'), undefined);
  t.is(nodeProblem('25.1.0'), undefined);
  t.is(nodeProblem('20.20.2'), 'needs Node.js 24 or newer, but this is Node.js 20.20.2');
  t.is(nodeProblem('22.12.0'), 'needs Node.js 24 or newer, but this is Node.js 22.12.0');
});

test('bin - both launchers run their program, and say what to run when the build is missing', async (t) => {
  for (const [name, first] of [
    ['gmt-train', /^Usage: gmt-train \[options\]/],
    ['gmt-operator', /^Usage: gmt-operator \[options\]/],
  ] as const) {
    const r = spawnSync(process.execPath, [repoPath('bin', `${name}.js`), '--help'], { encoding: 'utf8', timeout: 120_000 });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, first);
  }
  const dir = await mkdtemp(join(tmpdir(), 'gmt-bin-'));
  try {
    await cp(repoPath('bin'), join(dir, 'bin'), { recursive: true });
    const r = spawnSync(process.execPath, [join(dir, 'bin', 'gmt-train.js'), '--help'], { encoding: 'utf8', timeout: 60_000 });
    t.is(r.status, 1);
    t.is(r.stderr, `gmt-train: dist/trainer/src/main.js is missing; run \`npm run build\` in ${dir} first\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

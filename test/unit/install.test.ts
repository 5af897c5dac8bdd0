/**
 * What makes a quiet `npm ci` safe (.npmrc sets loglevel=error): every locked package accepts the
 * Node.js the project runs on (the pinned `node` devDependency), and package.json's allowScripts
 * decides every dependency's install script (approve or deny; by name: the lock records no
 * "resolved" URLs, so npm cannot pin an approval to a version), so npm has nothing to warn about
 * that the project has not already answered.
 */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import semver from 'semver';
import { z } from 'zod';
import { repoPath } from '../helpers/repo.js';

const LockSchema = z.object({
  packages: z.record(
    z.string(),
    z.looseObject({
      version: z.string().optional(),
      engines: z.union([z.record(z.string(), z.string()), z.array(z.string())]).optional(),
      hasInstallScript: z.boolean().optional(),
    }),
  ),
});
const PackageSchema = z.looseObject({ devDependencies: z.record(z.string(), z.string()), allowScripts: z.record(z.string(), z.boolean()) });

async function load(): Promise<{ lock: z.infer<typeof LockSchema>; pkg: z.infer<typeof PackageSchema> }> {
  return {
    lock: LockSchema.parse(JSON.parse(await readFile(repoPath('package-lock.json'), 'utf-8'))),
    pkg: PackageSchema.parse(JSON.parse(await readFile(repoPath('package.json'), 'utf-8'))),
  };
}

test('install - every locked package accepts the pinned Node.js the project runs on', async (t) => {
  const { lock, pkg } = await load();
  const node = pkg.devDependencies['node'];
  t.truthy(node && semver.valid(node), 'node is pinned to an exact version');
  const refused = Object.entries(lock.packages)
    .filter(([path, p]) => path !== '' && p.engines !== undefined && !Array.isArray(p.engines) && p.engines['node'] !== undefined)
    .filter(([, p]) => !semver.satisfies(node!, (p.engines as Record<string, string>)['node']!.replace(/\.x\b/g, ''), { includePrerelease: true }))
    .map(([path, p]) => `${path} needs node ${(p.engines as Record<string, string>)['node']}`);
  t.deepEqual(refused, []);
  t.true(semver.satisfies(process.versions.node, `^${semver.major(node!)}`), `the tests run on the pinned Node (${process.versions.node})`);
});

test('install - allowScripts approves or denies every install script in the lock, and names nothing else', async (t) => {
  const { lock, pkg } = await load();
  const withScripts = Object.entries(lock.packages)
    .filter(([, p]) => p.hasInstallScript === true)
    .map(([path, p]) => ({ name: path.replace(/^.*node_modules\//, ''), version: p.version ?? '' }));
  const decided = (name: string, version: string) => Object.keys(pkg.allowScripts).some((k) => k === name || k === `${name}@${version}`);
  t.deepEqual(
    withScripts.filter((p) => !decided(p.name, p.version)).map((p) => `${p.name}@${p.version}`),
    [],
  );
  const stale = Object.keys(pkg.allowScripts).filter((k) => !withScripts.some((p) => k === p.name || k === `${p.name}@${p.version}`));
  t.deepEqual(stale, [], 'entries for packages that are no longer locked with an install script');
});

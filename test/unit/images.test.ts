// The images could start: for each Dockerfile, a temporary folder holds only what the image's final
// stage copies (its COPY lines, read from the Dockerfile) plus a node_modules with only the
// production dependencies the image installs, and the ENTRYPOINT runs with `--help` from there.
// Until the images themselves are built on a real node, this catches an entrypoint that imports a
// file the image does not contain (test/ code, trainer/ from the operator, a missing dist/ folder).

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { repoPath } from '../helpers/repo.js';

/** What a Dockerfile's final stage puts under its WORKDIR, and how it starts. */
interface ImageLayout {
  /** [source in the repository, destination relative to WORKDIR] of each plain COPY. */
  readonly copies: readonly (readonly [string, string])[];
  /** Whether `npm ci` (or the copied node_modules) leaves out optionalDependencies. */
  readonly omitOptional: boolean;
  /** The entrypoint script, relative to WORKDIR. */
  readonly entrypoint: string;
}

/** Reads the layout from the Dockerfile text (final stage; WORKDIR /app as both images use). */
function parseDockerfile(text: string, name: string): ImageLayout {
  const lines = text.split('\n').map((l) => l.trim());
  const stages = lines.reduce((last, l, i) => (l.startsWith('FROM ') ? i : last), 0);
  const all = lines.join('\n');
  const copies: [string, string][] = [];
  for (const l of lines.slice(stages)) {
    if (!l.startsWith('COPY ') || l.includes('--from=')) continue;
    const parts = l.slice('COPY '.length).split(/\s+/);
    const dest = parts.at(-1) ?? '';
    for (const src of parts.slice(0, -1)) copies.push([src, dest.endsWith('/') ? join(dest, src.split('/').at(-1) ?? src) : dest]);
  }
  const entry = /^ENTRYPOINT\s+(\[.*\])$/m.exec(all);
  if (entry?.[1] === undefined) throw new Error(`${name}: no ENTRYPOINT`);
  const argv = z.array(z.string()).parse(JSON.parse(entry[1]));
  if (argv[0] !== 'node' || argv[1]?.startsWith('/app/') !== true) throw new Error(`${name}: ENTRYPOINT must be ["node", "/app/…"], got ${entry[1]}`);
  if (!/^WORKDIR \/app$/m.test(all)) throw new Error(`${name}: expected WORKDIR /app`);
  if (!/npm ci[^\n]*--omit=dev/.test(all)) throw new Error(`${name}: expected npm ci --omit=dev`);
  return { copies, omitOptional: /npm ci[^\n]*--omit=optional/.test(all), entrypoint: argv[1].slice('/app/'.length) };
}

const PackageJsonSchema = z.object({
  dependencies: z.record(z.string(), z.string()).default({}),
  optionalDependencies: z.record(z.string(), z.string()).default({}),
});

/**
 * A node_modules holding links to the production dependencies only (their own dependencies resolve
 * from their real location): an import of a devDependency from the entrypoint fails here.
 */
async function productionModules(folder: string, omitOptional: boolean): Promise<void> {
  const pkg = PackageJsonSchema.parse(JSON.parse(await readFile(repoPath('package.json'), 'utf8')));
  const names = [...Object.keys(pkg.dependencies), ...(omitOptional ? [] : Object.keys(pkg.optionalDependencies))];
  for (const name of names) {
    const real = repoPath('node_modules', name);
    if (!existsSync(real)) continue; // an optional dependency that is not installed on this machine
    const link = join(folder, 'node_modules', name);
    await mkdir(dirname(link), { recursive: true });
    await symlink(real, link, 'dir');
  }
}

/** Each image and the first line of its entrypoint's --help. */
const IMAGES = [
  { dockerfile: 'operator.Dockerfile', help: /^Usage: gmt-operator \[options\]/ },
  { dockerfile: 'trainer.Dockerfile', help: /^Usage: gmt-train \[options\]/ },
  { dockerfile: 'trainer-gpu.Dockerfile', help: /^Usage: gmt-train \[options\]/ },
] as const;

for (const { dockerfile, help } of IMAGES) {
  test(`images - ${dockerfile}: the entrypoint starts with --help from only what the image copies`, async (t) => {
    const layout = parseDockerfile(await readFile(repoPath('images', dockerfile), 'utf8'), dockerfile);
    const folder = await mkdtemp(join(tmpdir(), 'gmt-image-'));
    try {
      for (const [src, dest] of layout.copies) {
        t.true(existsSync(repoPath(src)), `${dockerfile} copies ${src}, which is missing (run npm run build)`);
        await cp(repoPath(src), join(folder, dest), { recursive: true });
      }
      await productionModules(folder, layout.omitOptional);
      const r = spawnSync(process.execPath, [join(folder, layout.entrypoint), '--help'], {
        cwd: folder,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, NODE_ENV: 'production' },
      });
      t.is(r.status, 0, `exit ${String(r.status)} ${r.signal ?? ''}\n${r.stderr}`);
      t.regex(r.stdout, help);
      if (dockerfile.startsWith('trainer')) {
        // The default baseModel "bundled" must be in the image.
        t.true(existsSync(join(folder, 'trainer', 'assets', 'base-tiny', 'model.safetensors')), 'the bundled base model is copied');
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
}

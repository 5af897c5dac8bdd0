/** Locations inside the installed package (works from trainer/src and from dist/trainer/src). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && !dir.endsWith('/dist')) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
}

/** The package (repository) root. */
export const PACKAGE_ROOT = findPackageRoot();

/** The bundled base model folder (model.safetensors + config.json), made by `npm run pretrain`. */
export const BUNDLED_BASE_MODEL = join(PACKAGE_ROOT, 'trainer', 'assets', 'base-tiny');

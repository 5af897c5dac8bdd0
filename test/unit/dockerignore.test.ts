// The build context: .dockerignore excludes everything (`*`) and re-includes what the Dockerfiles
// copy. Every plain COPY source of images/*.Dockerfile must be re-included, or `docker build` (and
// the real-node harness's buildah build) fails with "no such file or directory".

import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { repoPath } from '../helpers/repo.js';

async function copySources(): Promise<{ file: string; source: string }[]> {
  const out: { file: string; source: string }[] = [];
  for (const file of (await readdir(repoPath('images'))).filter((f) => f.endsWith('.Dockerfile'))) {
    for (const line of (await readFile(repoPath('images', file), 'utf8')).split('\n')) {
      if (!line.startsWith('COPY ') || line.includes('--from=')) continue;
      const parts = line.slice('COPY '.length).trim().split(/\s+/);
      for (const source of parts.slice(0, -1)) out.push({ file, source: source.replace(/\/$/, '') });
    }
  }
  return out;
}

test('dockerignore - excludes everything by default and keeps every COPY source of images/*.Dockerfile', async (t) => {
  const lines = (await readFile(repoPath('.dockerignore'), 'utf8')).split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  t.is(lines[0], '*');
  const kept = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const sources = await copySources();
  t.true(sources.length >= 5, `found ${sources.length} COPY sources`);
  for (const { file, source } of sources) {
    t.true(
      kept.some((k) => source === k || source.startsWith(`${k}/`)),
      `${file}: COPY ${source} is excluded by .dockerignore`,
    );
  }
});

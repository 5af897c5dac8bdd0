// `npm run setup:binaries [-- NAME…]`: builds the test binaries that are not cached yet (all by
// default) and prints where they are and how long each took. Run before every ava tier that needs
// them, so no ava timeout ever includes a cold Go build.

import { cacheDir } from '../trainer/src/collective/nats/find-server.js';
import { BINARY_NAMES, binaryVersion, ensureBinaries, formatDuration, type BinaryName } from '../test/harness/binaries.js';

function isBinaryName(s: string): s is BinaryName {
  return (BINARY_NAMES as readonly string[]).includes(s);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !isBinaryName(a));
  if (unknown.length > 0) {
    process.stderr.write(`unknown binary ${unknown.join(', ')}; known: ${BINARY_NAMES.join(', ')}\n`);
    return 2;
  }
  const names = args.length > 0 ? args.filter(isBinaryName) : [...BINARY_NAMES];
  const started = Date.now();
  const paths = await ensureBinaries(names);
  for (const n of names) process.stderr.write(`  ${n} ${await binaryVersion(n)}: ${paths[n]}\n`);
  process.stderr.write(`gmt: test binaries ready in ${cacheDir()}/bin (${formatDuration(Date.now() - started)})\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`setup:binaries failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

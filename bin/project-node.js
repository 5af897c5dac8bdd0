// Runs one of the project's programs on the Node.js it was built for (the pinned `node`
// devDependency, Node 24), whatever `node` is first on PATH. Plain JavaScript that any Node since
// 12 can parse, so that an older Node reaches the one clear line below instead of a syntax error.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The oldest Node.js major version the programs run on. */
export const NODE_MAJOR_NEEDED = 24;

/** Why `version` (process.versions.node) cannot run the programs, or undefined when it can. */
export function nodeProblem(version) {
  const major = Number(String(version).split('.')[0]);
  if (Number.isInteger(major) && major >= NODE_MAJOR_NEEDED) return undefined;
  return `needs Node.js ${NODE_MAJOR_NEEDED} or newer, but this is Node.js ${version}`;
}

/**
 * Run `entry` (relative to the repository root) as program `name`: in this process on Node ≥ 24,
 * else re-executed on the project's own Node 24 (node_modules/node, installed by `npm ci`), else
 * exit 1 with one line naming the version needed.
 */
export async function run(name, entry) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const problem = nodeProblem(process.versions.node);
  if (problem === undefined) {
    const file = join(root, entry);
    if (!existsSync(file)) {
      process.stderr.write(`${name}: ${entry} is missing; run \`npm run build\` in ${root} first\n`);
      process.exit(1);
    }
    await import(pathToFileURL(file).href);
    return;
  }
  const projectNode = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(projectNode)) {
    process.stderr.write(
      `${name} ${problem}; run \`npm ci\` in ${root} (it installs Node.js ${NODE_MAJOR_NEEDED}) or put Node.js ${NODE_MAJOR_NEEDED} first on PATH\n`,
    );
    process.exit(1);
  }
  const child = spawn(projectNode, [join(root, entry), ...process.argv.slice(2)], { stdio: 'inherit' });
  // A terminal's Ctrl-C reaches the whole process group (the child too): do not send it twice, since
  // the trainer treats a second SIGINT as "exit now". SIGTERM and SIGHUP (from a supervisor) are forwarded.
  process.on('SIGINT', () => undefined);
  for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    process.stderr.write(`${name}: cannot start ${projectNode}: ${e.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code === null ? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15) : code));
}

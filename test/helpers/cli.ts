/** Running the real gmt-train CLI as a child process. */
import { spawn } from 'node:child_process';
import { repoPath } from './repo.js';

/** Path of the compiled CLI. */
export const CLI = repoPath('dist/trainer/src/main.js');

/** A fresh micro model on short sequences: the CLI runs of the tests take seconds with it. */
export const MICRO_MODEL = ['--base-model', 'none', '--model-preset', 'micro', '--seq-len', '32'] as const;

/** Result of one CLI run. */
export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run gmt-train with args (and extra env); resolves when it exits. */
export function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 240_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gmt-train timed out: ${args.join(' ')}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

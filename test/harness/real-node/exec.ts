// Running the node's command-line tools (ip, iptables, ctr, mount…) with their output captured.

import { execFile } from 'node:child_process';

/** Raised when a command fails; the message carries the command and its stderr. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    message: string,
    readonly code: number | string,
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Runs `cmd args`; resolves with stdout, rejects with CommandError on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      [...args],
      { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve(stdout);
          return;
        }
        const code = typeof err.code === 'number' || typeof err.code === 'string' ? err.code : 'error';
        reject(new CommandError(`${cmd} ${args.join(' ')} failed (${String(code)}): ${stderr.trim() || err.message}`, code, stderr, { cause: err }));
      },
    );
  });
}

/** Like run, but resolves with undefined instead of rejecting (for clean-up of things that may be gone). */
export async function tryRun(cmd: string, args: readonly string[]): Promise<string | undefined> {
  try {
    return await run(cmd, args);
  } catch {
    return undefined;
  }
}

/**
 * Error classes of the trainer. Each failure mode has its own class with a `cause` chain; only
 * main.ts turns them into process exit codes (see EXIT_CODES).
 */

/** Process exit codes shared with the operator's failure policy (ARCHITECTURE §4). */
export const EXIT_CODES = {
  ok: 0,
  /** Unexpected internal error (a bug); treated as non-retryable by the operator. */
  internal: 1,
  /** Bad CLI usage or config (unknown key, value out of range). Non-retryable. */
  config: 2,
  /** Bad data (malformed JSONL, unknown token, empty dataset). Non-retryable. */
  data: 3,
  /** Checkpoint or weights file incompatible, truncated or corrupt. Non-retryable. */
  checkpoint: 4,
  /** Training diverged (non-finite loss or gradients beyond the allowed skips). Non-retryable. */
  numeric: 5,
  /** A peer was lost, a collective aborted, NATS was lost, a deadline passed. Retryable. */
  retryable: 75,
  /** Terminated by a signal after a clean shutdown (SIGTERM/SIGINT). Retryable. */
  interrupted: 76,
} as const;

export type ExitCodeName = keyof typeof EXIT_CODES;

/** Exit codes after which the operator may restart the gang from the last checkpoint. */
export const RETRYABLE_EXIT_CODES: readonly number[] = [EXIT_CODES.retryable, EXIT_CODES.interrupted];

/** Base class: every trainer error names its exit code. */
export abstract class TrainerError extends Error {
  abstract readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Invalid configuration or CLI flags. */
export class ConfigError extends TrainerError {
  override readonly name: string = 'ConfigError';
  readonly exitCode = EXIT_CODES.config;
}

/** Invalid training or evaluation data; the message names the file and line where known. */
export class DataError extends TrainerError {
  override readonly name: string = 'DataError';
  readonly exitCode = EXIT_CODES.data;
}

/** A checkpoint or weights file that cannot be used (wrong architecture, truncated, corrupt). */
export class CheckpointError extends TrainerError {
  override readonly name: string = 'CheckpointError';
  readonly exitCode = EXIT_CODES.checkpoint;
}

/** Non-finite values in gradients or loss beyond what the skip policy allows. */
export class NumericError extends TrainerError {
  override readonly name: string = 'NumericError';
  readonly exitCode = EXIT_CODES.numeric;
}

/** A failure that a restart of the whole gang from the last checkpoint can fix. */
export class RetryableError extends TrainerError {
  override readonly name: string = 'RetryableError';
  readonly exitCode = EXIT_CODES.retryable;
}

/** The process was asked to stop (signal); state was saved or left untouched. */
export class InterruptedError extends TrainerError {
  override readonly name: string = 'InterruptedError';
  readonly exitCode = EXIT_CODES.interrupted;
}

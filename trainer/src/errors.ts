/**
 * Error classes of the trainer. Each failure mode has its own class with a `cause` chain; only
 * main.ts turns them into process exit codes (contract/exit-codes.ts EXIT_CODES).
 */

import { EXIT_CODES } from '../../contract/exit-codes.js';

/** Base class: every trainer error names its exit code. */
export abstract class TrainerError extends Error {
  abstract readonly exitCode: number;
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

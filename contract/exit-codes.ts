/**
 * Trainer process exit codes: the trainer's main.ts exits with them and the operator's failure
 * policy (operator/src/controller/policy.ts) reads them to tell a retryable failure from a fatal one.
 */

/** Process exit codes shared with the operator's failure policy (docs/architecture.md §4). */
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

/** Exit codes after which the operator (and the local launcher) may restart the gang from the last checkpoint. */
export const RETRYABLE_EXIT_CODES: readonly number[] = [EXIT_CODES.retryable, EXIT_CODES.interrupted];

/** The snapshot the progress tracker keeps per job of the trainer's progress messages (contract/progress.ts). */
import type { ProgressMessage } from '../../../contract/progress.js';

/** The latest message of a job plus when its step last changed (for hang detection). */
export interface ProgressSnapshot {
  readonly message: ProgressMessage;
  /** Epoch ms of the message. */
  readonly receivedAt: number;
  /** Epoch ms when `step` (or `attempt`) last took a new value. */
  readonly stepChangedAt: number;
}

/** The snapshot after `msg` arrived at `now`. */
export function foldProgress(prev: ProgressSnapshot | undefined, msg: ProgressMessage, now: number): ProgressSnapshot {
  const moved = prev === undefined || prev.message.step !== msg.step || prev.message.attempt !== msg.attempt;
  return { message: msg, receivedAt: now, stepChangedAt: moved ? now : prev.stepChangedAt };
}

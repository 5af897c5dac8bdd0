/**
 * Injectable time for the transports, so tests can drive deadlines and heartbeats. The same shape
 * as the operator's Clock (operator/src/runtime/clock.ts): `now()` and `setTimer(fn, ms)`, in
 * setTimeout's argument order; here `now()` is monotonic (only differences matter).
 */

/** A scheduled callback that can be cancelled. */
export interface TimerHandle {
  /** Cancels the callback if it has not run yet (idempotent). */
  cancel(): void;
}

/** Monotonic milliseconds and one-shot timers. */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** Real time: performance.now() and setTimeout. */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimer(fn: () => void, ms: number): TimerHandle {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
});

/** Injectable time for the transports, so tests can drive deadlines and heartbeats. */

/** A scheduled callback that can be cancelled. */
export interface Scheduled {
  cancel(): void;
}

/** Monotonic milliseconds and one-shot timers. */
export interface Clock {
  now(): number;
  schedule(ms: number, fn: () => void): Scheduled;
}

/** Real time: performance.now() and setTimeout. */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  schedule(ms: number, fn: () => void): Scheduled {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
});

/**
 * Sender-side credit windows (docs/architecture.md §3: the nats.js client never applies
 * backpressure on publish and the server cuts off a subscriber whose pending bytes pass
 * max_pending, so the sender must bound what is in flight): at most `window` chunks un-acknowledged
 * per receiver. Receivers grant credit by publishing the cumulative number of chunks they consumed
 * from this sender (mod 2^32), so a repeated or reordered grant is harmless.
 */

interface CreditWaiter {
  readonly targets: readonly number[];
  resolve(): void;
  reject(err: Error): void;
}

const U32 = 2 ** 32;

/** Credit accounting of one sending rank towards every receiver. */
export class FlowControl {
  readonly #sent: number[];
  readonly #acked: number[];
  readonly #waiters = new Set<CreditWaiter>();
  #failure: Error | undefined;

  constructor(
    worldSize: number,
    readonly window: number,
  ) {
    this.#sent = new Array<number>(worldSize).fill(0);
    this.#acked = new Array<number>(worldSize).fill(0);
  }

  /** Chunks sent to `rank` and not yet acknowledged. */
  inFlight(rank: number): number {
    return (this.#sent[rank] ?? 0) - (this.#acked[rank] ?? 0);
  }

  /** Whether one more chunk may go to every target now. */
  canSend(targets: readonly number[]): boolean {
    return targets.every((r) => this.inFlight(r) < this.window);
  }

  #reserve(targets: readonly number[]): void {
    for (const r of targets) this.#sent[r] = (this.#sent[r] ?? 0) + 1;
  }

  /**
   * Applies a grant: `receiver` has consumed `consumed` (mod 2^32) chunks from us in total.
   * Returns false for an implausible grant (more than was sent); stale grants are ignored.
   */
  onGrant(receiver: number, consumed: number): boolean {
    const sent = this.#sent[receiver] ?? 0;
    const outstanding = ((((sent % U32) - consumed) % U32) + U32) % U32;
    const acked = sent - outstanding;
    if (acked < 0 || outstanding > sent) return false;
    if (acked > (this.#acked[receiver] ?? 0)) {
      this.#acked[receiver] = acked;
      this.#wake();
    }
    return true;
  }

  /**
   * Resolves when one more chunk may go to every target, with that chunk already counted as sent
   * (so concurrent senders never overrun the window); rejects on failure.
   */
  acquire(targets: readonly number[]): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.canSend(targets)) {
      this.#reserve(targets);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiters.add({ targets, resolve, reject });
    });
  }

  /** Pending acquires (for diagnostics). */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Rejects every pending and future wait with `err`. */
  fail(err: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    for (const w of this.#waiters) w.reject(err);
    this.#waiters.clear();
  }

  #wake(): void {
    for (const w of this.#waiters) {
      if (this.canSend(w.targets)) {
        this.#waiters.delete(w);
        this.#reserve(w.targets);
        w.resolve();
      }
    }
  }
}

/**
 * Complete messages buffered by key until taken, shared by MemoryTransport and NatsTransport
 * (transport.ts contract: `recv` may come before or after the message; each message is taken once;
 * a fault rejects every pending and future `recv`).
 */
import { COLLECTIVE_PHASES, type CollectivePhase } from './transport.js';

/** Identifies one message: (source rank, step, phase, tag). */
export function messageKey(from: number, step: number, phase: CollectivePhase, tag: number): string {
  return `${from}/${step}/${phase}/${tag}`;
}

interface Waiter {
  readonly step: number;
  resolve(data: Uint8Array): void;
  reject(err: Error): void;
}

/** Buffer of complete messages, with waiters for those not yet arrived. */
export class Mailbox {
  readonly #ready = new Map<string, { readonly step: number; readonly data: Uint8Array }>();
  readonly #waiting = new Map<string, Waiter>();
  /** Keys delivered (buffered or taken), by step, so that a repeated message is recognised. */
  readonly #delivered = new Map<string, number>();
  #failure: Error | undefined;

  /** The error that failed this mailbox, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Whether a message with this key was already delivered (and is buffered or taken). */
  isDelivered(key: string): boolean {
    return this.#delivered.has(key);
  }

  /** Hands a complete message to its waiter or buffers it. False (and nothing stored) for a repeated key or after a failure. */
  deliver(key: string, step: number, data: Uint8Array): boolean {
    if (this.#failure !== undefined || this.#delivered.has(key)) return false;
    this.#delivered.set(key, step);
    const waiter = this.#waiting.get(key);
    if (waiter !== undefined) {
      this.#waiting.delete(key);
      waiter.resolve(data);
    } else {
      this.#ready.set(key, { step, data });
    }
    return true;
  }

  /** The message for `key`, now or when it arrives. Rejects on failure, on a second concurrent take, or when already taken. */
  take(key: string, step: number): Promise<Uint8Array> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const ready = this.#ready.get(key);
    if (ready !== undefined) {
      this.#ready.delete(key);
      return Promise.resolve(ready.data);
    }
    if (this.#delivered.has(key)) return Promise.reject(new Error(`recv ${key}: message already taken`));
    if (this.#waiting.has(key)) return Promise.reject(new Error(`recv ${key}: a recv for this message is already pending`));
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#waiting.set(key, { step, resolve, reject });
    });
  }

  /** Number of pending takes (for tests and diagnostics). */
  get pending(): number {
    return this.#waiting.size;
  }

  /** Rejects every pending and future take with `err` and drops buffered messages (first failure wins). */
  fail(err: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    const waiters = [...this.#waiting.values()];
    this.#waiting.clear();
    this.#ready.clear();
    for (const w of waiters) w.reject(err);
  }

  /** Forgets buffered messages and delivery records of steps below `step` (pending takes stay). */
  pruneBelow(step: number): void {
    for (const [key, entry] of this.#ready) if (entry.step < step) this.#ready.delete(key);
    for (const [key, s] of this.#delivered) if (s < step && !this.#waiting.has(key)) this.#delivered.delete(key);
  }
}

/** Throws a RangeError unless (step, phase, tag) fit the wire format (u32 step and tag, a known phase). */
export function checkMessageArgs(step: number, phase: CollectivePhase, tag: number): void {
  if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) throw new RangeError(`step must be an integer in [0, 2^32), got ${step}`);
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) throw new RangeError(`tag must be an integer in [0, 2^32), got ${tag}`);
  if (!COLLECTIVE_PHASES.includes(phase)) throw new RangeError(`unknown phase ${phase}`);
}

/** Throws a RangeError unless `peer` is another rank of the world. */
export function checkPeer(self: number, worldSize: number, peer: number): void {
  if (!Number.isInteger(peer) || peer < 0 || peer >= worldSize || peer === self)
    throw new RangeError(`rank ${self}: peer ${peer} is not another rank of world size ${worldSize}`);
}

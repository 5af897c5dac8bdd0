/** Reassembly of one chunked message on the receiving side (all chunks, then the whole-message CRC). */
import { checksum, type DataFrame } from './wire.js';

/** The chunks of one message received so far. */
export class Assembly {
  /** The message bytes, filled chunk by chunk. */
  readonly buffer: Uint8Array;
  readonly #have: Uint8Array;
  #claimed = 0;
  #written = 0;
  #writtenBytes = 0;

  constructor(readonly first: DataFrame) {
    this.buffer = new Uint8Array(first.totalLength);
    this.#have = new Uint8Array(first.chunkCount);
  }

  /** Whether `f` describes the same message as the first chunk (geometry, broadcast flag, message CRC). */
  matches(f: DataFrame): boolean {
    const a = this.first;
    return (
      f.totalLength === a.totalLength &&
      f.chunkCount === a.chunkCount &&
      f.chunkSize === a.chunkSize &&
      f.messageCrc === a.messageCrc &&
      f.broadcast === a.broadcast
    );
  }

  /** Claims chunk `index`; false when it was already claimed (a duplicate). */
  claim(index: number): boolean {
    if (this.#have[index] === 1) return false;
    this.#have[index] = 1;
    this.#claimed++;
    return true;
  }

  /** Copies a claimed chunk's payload into place. */
  write(f: DataFrame): void {
    this.buffer.set(f.payload, f.chunkIndex * this.first.chunkSize);
    this.#written++;
    this.#writtenBytes += f.payload.length;
  }

  /** Every chunk written. */
  get complete(): boolean {
    return this.#written === this.first.chunkCount;
  }

  /** Whether the assembled bytes match the whole-message CRC. */
  verify(): boolean {
    return checksum(this.buffer) === this.first.messageCrc;
  }

  /** "k of n chunks (b of t bytes)" for deadline errors. */
  progress(): string {
    return (
      `${this.#written} of ${this.first.chunkCount} chunks (${this.#writtenBytes} of ${this.first.totalLength} bytes)` +
      (this.#claimed > this.#written ? `, ${this.#claimed - this.#written} more being consumed` : '')
    );
  }
}

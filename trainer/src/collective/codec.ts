/**
 * Wire encodings of the collective payloads. The masked all-gather (docs/architecture.md §3 step 5) sends a
 * shard's kept entries as a bitmap + values while density ≥ 1/32, else as u32 indices + values; the
 * header carries the count, so a receiver checks that bitmap, indices and byte length agree.
 */
import { RetryableError } from '../errors.js';

/** Below this density, indices (4 B per kept entry) beat a bitmap (1/8 B per entry). */
export const BITMAP_MIN_DENSITY = 1 / 32;

const KIND_BITMAP = 1,
  KIND_INDICES = 2;
const HEADER = 12; // u32 kind, u32 shard size, u32 kept count

/** Copy the bytes of a typed array into a standalone Uint8Array view (no aliasing of the source). */
export function bytesOf(a: Float32Array | Float64Array | Uint32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength) as ArrayBuffer);
}

function aligned(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Bytes → Float32Array of an expected length (a RetryableError on a size mismatch: a torn message). */
export function f32(bytes: Uint8Array, expected: number, what: string): Float32Array {
  if (bytes.byteLength !== expected * 4) throw new RetryableError(`${what}: ${bytes.byteLength} bytes, expected ${expected * 4}`);
  return new Float32Array(aligned(bytes));
}

/** Bytes → Float64Array (any length that is a multiple of 8). */
export function f64(bytes: Uint8Array, what: string): Float64Array {
  if (bytes.byteLength % 8 !== 0) throw new RetryableError(`${what}: ${bytes.byteLength} bytes is not a whole number of float64`);
  return new Float64Array(aligned(bytes));
}

/** Bytes → Uint32Array (any length that is a multiple of 4). */
export function u32(bytes: Uint8Array, what: string): Uint32Array {
  if (bytes.byteLength % 4 !== 0) throw new RetryableError(`${what}: ${bytes.byteLength} bytes is not a whole number of u32`);
  return new Uint32Array(aligned(bytes));
}

/** Payload bytes of a masked shard with `kept` of `n` entries, for the chosen encoding. */
export function maskedBytes(n: number, kept: number): number {
  return HEADER + kept * 4 + (kept >= n * BITMAP_MIN_DENSITY ? Math.ceil(n / 8) : kept * 4);
}

/** Encode values[lo+i] where keep[lo+i] = 1, for i in [0, hi−lo). */
export function encodeMasked(values: Float32Array, keep: Uint8Array, lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  let kept = 0;
  for (let i = lo; i < hi; i++) kept += keep[i]!;
  const bitmap = kept >= n * BITMAP_MIN_DENSITY;
  const out = new Uint8Array(maskedBytes(n, kept));
  const head = new DataView(out.buffer);
  head.setUint32(0, bitmap ? KIND_BITMAP : KIND_INDICES, true);
  head.setUint32(4, n, true);
  head.setUint32(8, kept, true);
  const vals = new Float32Array(out.buffer, HEADER, kept);
  if (bitmap) {
    const bits = new Uint8Array(out.buffer, HEADER + kept * 4, Math.ceil(n / 8));
    let j = 0;
    for (let i = 0; i < n; i++)
      if (keep[lo + i]) {
        bits[i >> 3] = bits[i >> 3]! | (1 << (i & 7));
        vals[j++] = values[lo + i]!;
      }
  } else {
    const idx = new Uint32Array(out.buffer, HEADER + kept * 4, kept);
    let j = 0;
    for (let i = 0; i < n; i++)
      if (keep[lo + i]) {
        idx[j] = i;
        vals[j++] = values[lo + i]!;
      }
  }
  return out;
}

/**
 * Decode into target[lo+i] for the kept i; when `zeroMasked`, also write +0 at the masked entries
 * (the masked-gradient all-gather). Returns the kept count. Validates the structure strictly.
 */
export function decodeMasked(bytes: Uint8Array, target: Float32Array, lo: number, hi: number, zeroMasked: boolean, what: string): number {
  const n = hi - lo;
  const buf = aligned(bytes);
  if (buf.byteLength < HEADER) throw new RetryableError(`${what}: truncated header`);
  const head = new DataView(buf);
  const kind = head.getUint32(0, true),
    size = head.getUint32(4, true),
    kept = head.getUint32(8, true);
  if (size !== n) throw new RetryableError(`${what}: shard of ${size} entries, expected ${n}`);
  if (kept > n || buf.byteLength !== maskedBytes(n, kept)) throw new RetryableError(`${what}: ${buf.byteLength} bytes do not match ${kept} kept of ${n}`);
  const expectBitmap = kept >= n * BITMAP_MIN_DENSITY;
  if ((kind === KIND_BITMAP) !== expectBitmap || (kind !== KIND_BITMAP && kind !== KIND_INDICES))
    throw new RetryableError(`${what}: unexpected encoding ${kind}`);
  const vals = new Float32Array(buf, HEADER, kept);
  if (zeroMasked) target.fill(0, lo, hi);
  let j = 0;
  if (kind === KIND_BITMAP) {
    const bits = new Uint8Array(buf, HEADER + kept * 4, Math.ceil(n / 8));
    for (let i = 0; i < n; i++)
      if (bits[i >> 3]! & (1 << (i & 7))) {
        if (j >= kept) break;
        target[lo + i] = vals[j++]!;
      }
  } else {
    const idx = new Uint32Array(buf, HEADER + kept * 4, kept);
    let prev = -1;
    for (; j < kept; j++) {
      const i = idx[j]!;
      if (i <= prev || i >= n) throw new RetryableError(`${what}: index ${i} out of order or range`);
      prev = i;
      target[lo + i] = vals[j]!;
    }
  }
  if (j !== kept) throw new RetryableError(`${what}: bitmap holds a different count than the header's ${kept}`);
  return kept;
}

/** 64-bit FNV-1a-style hash of a float vector's bits, as a hex string (consistency checks). */
export function hashParams(v: Float32Array): string {
  const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
  let h1 = 0x811c9dc5,
    h2 = 0x01000193 ^ v.length;
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    h1 = Math.imul(h1 ^ x, 0x01000193);
    h2 = Math.imul(h2 ^ ((x << 13) | (x >>> 19)), 0x5bd1e995);
  }
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0');
}

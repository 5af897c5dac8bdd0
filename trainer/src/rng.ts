/**
 * Deterministic, counter-based randomness. Every random decision in the trainer (initialisation,
 * shuffling, random masks, HFT choices, dropout-free by design) is a pure function of
 * (seed, stream, counter), so any rank can compute any element without communicating and a resumed
 * run draws exactly what the uninterrupted one would have drawn.
 */

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 finaliser on a 64-bit BigInt (Steele, Lea, Flood 2014). */
export function mix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Derive a sub-seed for a named stream (e.g. "shuffle", "random-mask"), stable across versions. */
export function deriveSeed(seed: number | bigint, stream: string, ...keys: readonly number[]): bigint {
  let h = mix64(BigInt.asUintN(64, BigInt(seed)));
  for (let i = 0; i < stream.length; i++) h = mix64(h ^ BigInt(stream.charCodeAt(i)));
  for (const k of keys) h = mix64(h ^ BigInt.asUintN(64, BigInt(k)));
  return h;
}

/**
 * Fast 32-bit counter hash: a uniform u32 for (key, counter). `key` is two u32 words derived from a
 * seed with deriveSeed; the mixing is murmur3's fmix32 applied to a combination of key and counter,
 * good enough for masks and shuffles (not cryptographic). Pure and branch-free for hot loops.
 */
export function hash32(keyLo: number, keyHi: number, counter: number): number {
  let h = (counter ^ keyLo) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16) ^ keyHi) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Split a 64-bit seed into the two u32 words hash32 takes. */
export function seedWords(seed: bigint): readonly [number, number] {
  return [Number(seed & 0xffffffffn), Number((seed >> 32n) & 0xffffffffn)];
}

/** A small sequential PRNG (xoshiro128**) whose whole state is four u32 words, so it can be saved. */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number | bigint | readonly number[]) {
    this.s = new Uint32Array(4);
    if (Array.isArray(seed)) {
      if (seed.length !== 4) throw new RangeError('Rng state must be four u32 words');
      this.s.set(seed as readonly number[]);
    } else {
      let x = BigInt.asUintN(64, BigInt(seed as number | bigint));
      for (let i = 0; i < 4; i += 2) {
        x = mix64(x);
        this.s[i] = Number(x & 0xffffffffn);
        this.s[i + 1] = Number(x >> 32n);
      }
    }
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** The state, to store in a checkpoint; `new Rng(state)` continues the same sequence. */
  state(): number[] {
    return Array.from(this.s);
  }

  /** Next uniform u32. */
  nextU32(): number {
    const s = this.s;
    const s0 = s[0]!,
      s1 = s[1]!,
      s2 = s[2]!,
      s3 = s[3]!;
    const r = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] = s2 ^ s0;
    s[3] = s3 ^ s1;
    s[1] = s1 ^ s[2];
    s[0] = s0 ^ s[3];
    s[2] = s[2] ^ t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n) without modulo bias. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`nextInt: bad bound ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal by Box-Muller (one value per call; deterministic). */
  nextNormal(): number {
    let u = this.nextFloat();
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = xs[i]!;
      xs[i] = xs[j]!;
      xs[j] = tmp;
    }
    return xs;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Benchmark of the exact threshold select (trainer/src/masking) against a full sort, on 10M normal
 * float32 gradients: elements per second of each, measured in the same run, and their ratio.
 * docs/architecture.md §2 asks for O(n) selection, never a full sort; target ≥ 200M elements/s.
 */

import { Rng } from '../trainer/src/rng.js';
import { computeMask, keepCount, selectThreshold } from '../trainer/src/masking/index.js';

const N = 10_000_000;
const RATIOS = [0.1, 0.5, 0.9, 0.99];
const REPEATS = 7;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Threshold by full sort: copy, |g| on the bits, Float32Array.prototype.sort, then index. */
function sortThreshold(g: Float32Array, k: number): number {
  const copy = g.slice();
  const u = new Uint32Array(copy.buffer);
  for (let i = 0; i < u.length; i++) u[i] = u[i]! & 0x7fffffff;
  copy.sort();
  return copy[copy.length - k]!;
}

function main(): void {
  const rng = new Rng(2024);
  const g = new Float32Array(N);
  for (let i = 0; i < N; i++) g[i] = rng.nextNormal() * 1e-3;
  const mega = (ms: number): string => `${(N / ms / 1e3).toFixed(0)}M/s`;
  console.log(`threshold select on ${N / 1e6}M normal floats (median of ${REPEATS}; sort: 1 run)`);
  for (let w = 0; w < 3; w++) selectThreshold(g, keepCount(N, 0.5)); // warm up the JIT
  for (const r of RATIOS) {
    const k = keepCount(N, r);
    const times: number[] = [];
    let threshold = 0;
    for (let rep = 0; rep < REPEATS; rep++) {
      const t0 = performance.now();
      threshold = selectThreshold(g, k).threshold;
      times.push(performance.now() - t0);
    }
    const sel = median(times);
    const maskTimes: number[] = [];
    const bits = selectThreshold(g, k).thresholdBits;
    for (let rep = 0; rep < 3; rep++) {
      const t0 = performance.now();
      computeMask(g, bits);
      maskTimes.push(performance.now() - t0);
    }
    const t0 = performance.now();
    const sortT = sortThreshold(g, k);
    const sorted = performance.now() - t0;
    const same = sortT === threshold ? 'equal' : `MISMATCH (${sortT} vs ${threshold})`;
    console.log(
      `r=${r} k=${k}: select ${sel.toFixed(1)} ms (${mega(sel)}), ` +
        `mask ${median(maskTimes).toFixed(1)} ms (${mega(median(maskTimes))}), ` +
        `full sort ${sorted.toFixed(0)} ms (${mega(sorted)}), select/sort speed ratio ${(sorted / sel).toFixed(1)}x, ` +
        `thresholds ${same}`,
    );
  }
}

main();

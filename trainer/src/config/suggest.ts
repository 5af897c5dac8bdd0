/**
 * "Did you mean …?" for unknown configuration keys and flags: the candidate nearest by optimal
 * string alignment distance (Levenshtein plus adjacent transpositions), compared without case and
 * separators so that `mask_ratio`, `--mask-ratoi` and `maskratio` all find `maskRatio`.
 */

/** Optimal string alignment distance between a and b. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

const fold = (s: string): string =>
  s
    .replace(/^-+/, '')
    .replace(/[-_\s]/g, '')
    .toLowerCase();

/**
 * The candidate closest to `input`, or undefined when none is close: at most a third of the
 * longer word's letters may differ (at least 1, at most 3), so "lr" does not suggest "seed".
 */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  const x = fold(input);
  let best: string | undefined,
    bestD = Infinity;
  for (const c of candidates) {
    const y = fold(c);
    const dist = editDistance(x, y);
    const limit = Math.min(3, Math.max(1, Math.floor(Math.max(x.length, y.length) / 3)));
    if (dist <= limit && dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  return best;
}

/** " (did you mean X?)" or "" when nothing is close. */
export function didYouMean(input: string, candidates: readonly string[]): string {
  const s = suggest(input, candidates);
  return s === undefined ? '' : ` (did you mean ${s}?)`;
}

// A tiny parser of the Prometheus text exposition format 0.0.4, enough for tests
// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format).

/** One sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Raw value text, e.g. "1", "+Inf", "NaN". */
  readonly raw: string;
  readonly value: number;
}

/** A parsed scrape: samples plus the TYPE of each metric family. */
export interface Exposition {
  readonly samples: readonly Sample[];
  readonly types: ReadonlyMap<string, string>;
}

/** Parses `name{a="x",b="y"} value [timestamp]` lines and `# TYPE` comments; throws on bad lines. */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) types.set(m[1], m[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (m?.[1] === undefined || m[3] === undefined) throw new Error(`bad exposition line: ${line}`);
    samples.push({ name: m[1], labels: parseLabels(m[2] ?? ''), raw: m[3], value: parseValue(m[3]) });
  }
  return { samples, types };
}

/** Parses `{a="x",b="y"}` with the format's escapes (\\, \", \n). */
function parseLabels(block: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (block === '') return labels;
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
  re.lastIndex = 1;
  const end = block.length - 1;
  while (re.lastIndex < end) {
    const m = re.exec(block);
    if (m?.[1] === undefined || m[2] === undefined) throw new Error(`bad label block: ${block}`);
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/** Parses a sample value, including +Inf, -Inf and NaN (any case, as Prometheus's parser does). */
function parseValue(raw: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw.toLowerCase() === 'nan') return NaN;
  const v = Number(raw);
  if (Number.isNaN(v)) throw new Error(`bad sample value: ${raw}`);
  return v;
}

/** Samples of metric `name` whose labels include every pair in `match`. */
export function find(exp: Exposition, name: string, match: Readonly<Record<string, string>> = {}): Sample[] {
  return exp.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The single value of metric `name` matching `match`; throws unless exactly one sample matches. */
export function value(exp: Exposition, name: string, match: Readonly<Record<string, string>> = {}): number {
  const found = find(exp, name, match);
  if (found.length !== 1 || found[0] === undefined) {
    throw new Error(`expected one sample of ${name} ${JSON.stringify(match)}, found ${found.length}`);
  }
  return found[0].value;
}

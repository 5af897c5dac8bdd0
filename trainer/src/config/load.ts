/**
 * Resolving the configuration: defaults ← JSON config file ← environment ← CLI flags. Every source
 * is parsed strictly; an error names the source (file, variable or flag) and the field.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { flagName } from './describe.js';
import { type ConfigKey, NON_NUMERIC_KEYS, type TrainerConfig, TrainerConfigSchema } from '../../../contract/config.js';
import { ENV, ENV_KEYS } from '../../../contract/env.js';
import { didYouMean } from './suggest.js';

type Raw = Record<string, unknown>;

const KEYS = Object.keys(TrainerConfigSchema.shape) as ConfigKey[];

function shapeOf(): Record<string, z.ZodType> {
  return TrainerConfigSchema.shape;
}

/** All configuration keys, in schema order. */
export function configKeys(): readonly ConfigKey[] {
  return KEYS;
}

/** The schema type of a key without its default/optional wrappers. */
function baseType(key: ConfigKey): z.ZodType {
  let t: z.ZodType = shapeOf()[key]!;
  while (t instanceof z.ZodDefault || t instanceof z.ZodOptional) t = t.def.innerType as z.ZodType;
  return t;
}

/** Flags and env values are strings: numbers and booleans are converted before validation. */
export function coerce(key: ConfigKey, value: string, source: string): unknown {
  const t = baseType(key);
  if (t instanceof z.ZodBoolean) {
    if (value === 'true' || value === 'false') return value === 'true';
    throw new ConfigError(`${source}: "${value}" is not true or false`);
  }
  if (!(t instanceof z.ZodNumber)) return value;
  if (value.trim() === '' || !Number.isFinite(Number(value))) throw new ConfigError(`${source}: "${value}" is not a number`);
  return Number(value);
}

function formatIssues(err: z.ZodError, source: (key: string) => string): string {
  return err.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${source(k)}: unknown key "${k}"${didYouMean(k, configKeys())}`).join('; ');
      const key = String(i.path[0] ?? '');
      return `${source(key)}: ${key}: ${i.message}`;
    })
    .join('; ');
}

/** Read a JSON config file strictly (unknown keys are rejected by the final parse). */
export async function readConfigFile(path: string): Promise<Raw> {
  let text: string;
  try {
    text = await readFile(path, 'utf-8');
  } catch (e) {
    throw new ConfigError(`config file ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ConfigError(`config file ${path}: must hold a JSON object`);
  const unknown = Object.keys(data).filter((k) => !(configKeys() as readonly string[]).includes(k));
  if (unknown.length > 0)
    throw new ConfigError(
      `config file ${path}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"${didYouMean(k, configKeys())}`).join(', ')}`,
    );
  return data as Raw;
}

/**
 * Config values given as flags (the command-line parser's camelCase option names → values as typed),
 * converted to the fields' types; each value's source names its flag.
 */
export function flagValues(given: Readonly<Record<string, string>>): { values: Raw; sources: Record<string, string> } {
  const values: Raw = {};
  const sources: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) {
    if (!(configKeys() as readonly string[]).includes(k)) throw new ConfigError(`unknown option ${flagName(k)}${didYouMean(k, configKeys().map(flagName))}`);
    const key = k as ConfigKey;
    values[key] = coerce(key, v, `flag ${flagName(key)}`);
    sources[key] = `flag ${flagName(key)}`;
  }
  return { values, sources };
}

/** Config values from the environment (docs/architecture.md §4 variables). */
export function envValues(env: NodeJS.ProcessEnv): { values: Raw; sources: Record<string, string> } {
  const values: Raw = {};
  const sources: Record<string, string> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    values[key] = coerce(key, v, `environment ${name}`);
    sources[key] = `environment ${name}`;
  }
  return { values, sources };
}

/** Merge the layers and validate; errors name where the offending value came from. */
export function resolveConfig(layers: ReadonlyArray<{ values: Raw; source: string; sources?: Readonly<Record<string, string>> }>): TrainerConfig {
  const merged: Raw = {};
  const origin: Record<string, string> = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer.values)) {
      merged[k] = v;
      origin[k] = layer.sources?.[k] ?? layer.source;
    }
  }
  const r = TrainerConfigSchema.safeParse(merged);
  if (!r.success) throw new ConfigError(formatIssues(r.error, (k) => origin[k] ?? 'config'));
  return Object.freeze(r.data);
}

/**
 * Load the configuration: the JSON file (`configPath`, else GMT_CONFIG), the environment, then the
 * flags given on the command line (camelCase keys, text values).
 */
export async function loadConfig(
  flags: Readonly<Record<string, string>>,
  configPath: string | undefined,
  env: NodeJS.ProcessEnv,
  base: Raw = {},
): Promise<TrainerConfig> {
  const fromFlags = flagValues(flags);
  const path = configPath ?? env[ENV.config];
  const fileValues = path !== undefined && path !== '' ? await readConfigFile(path) : {};
  const envLayer = envValues(env);
  return resolveConfig([
    { values: base, source: 'checkpoint config' },
    { values: fileValues, source: `config file ${path ?? ''}` },
    { values: envLayer.values, source: 'environment', sources: envLayer.sources },
    { values: fromFlags.values, source: 'flags', sources: fromFlags.sources },
  ]);
}

/** SHA-256 over the fields that change a run's numbers; stored in checkpoints to refuse mismatches. */
export function configHash(c: TrainerConfig): string {
  const numeric: Raw = {};
  for (const k of configKeys()) if (!NON_NUMERIC_KEYS.has(k)) numeric[k] = c[k];
  return createHash('sha256').update(JSON.stringify(numeric)).digest('hex');
}

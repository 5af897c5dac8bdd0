/**
 * Resolving the configuration: defaults ← JSON config file ← environment ← CLI flags. Every source
 * is parsed strictly; an error names the source (file, variable or flag) and the field.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { type ConfigKey, NON_NUMERIC_KEYS, type TrainerConfig, TrainerConfigSchema } from '../../../contract/config.js';
import { ENV, ENV_KEYS } from '../../../contract/env.js';

type Raw = Record<string, unknown>;

const KEYS = Object.keys(TrainerConfigSchema.shape) as ConfigKey[];

function shapeOf(): Record<string, z.ZodType> {
  return TrainerConfigSchema.shape;
}

/** All configuration keys, in schema order. */
export function configKeys(): readonly ConfigKey[] {
  return KEYS;
}

/** camelCase key → --kebab-case flag. */
export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

function keyOfFlag(flag: string): ConfigKey | undefined {
  const key = flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return (configKeys() as readonly string[]).includes(key) ? (key as ConfigKey) : undefined;
}

/** The schema type of a key without its default/optional wrappers. */
function baseType(key: ConfigKey): z.ZodType {
  let t: z.ZodType = shapeOf()[key]!;
  while (t instanceof z.ZodDefault || t instanceof z.ZodOptional) t = t.def.innerType as z.ZodType;
  return t;
}

/** Flags and env values are strings: numbers and booleans are converted before validation. */
function coerce(key: ConfigKey, value: string, source: string): unknown {
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
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${source(k)}: unknown key "${k}"`).join('; ');
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
  if (unknown.length > 0) throw new ConfigError(`config file ${path}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`);
  return data as Raw;
}

/** Parsed CLI: config values from flags, plus the non-config options main.ts handles. */
export interface ParsedFlags {
  readonly values: Raw;
  readonly configPath: string | undefined;
  readonly sources: Readonly<Record<string, string>>;
}

/**
 * Parse `--key value` / `--key=value` flags (kebab-case of the config keys). `extra` lists flags
 * that the caller handles itself (returned in values under their camelCase names).
 */
export function parseFlags(argv: readonly string[], extra: readonly string[] = []): ParsedFlags {
  const values: Raw = {};
  const sources: Record<string, string> = {};
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument "${arg}" (options are --key value)`);
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const take = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new ConfigError(`flag ${flag} needs a value`);
      i++;
      return next;
    };
    if (flag === '--config') {
      configPath = take();
      continue;
    }
    if (extra.includes(flag)) {
      const name = flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      values[name] = take();
      continue;
    }
    const key = keyOfFlag(flag);
    if (key === undefined) throw new ConfigError(`unknown flag ${flag} (see gmt-train --help)`);
    values[key] = coerce(key, take(), `flag ${flag}`);
    sources[key] = `flag ${flag}`;
  }
  return { values, configPath, sources };
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

/** Load the configuration from a file path (or GMT_CONFIG), the environment and CLI flags. */
export async function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  extra: readonly string[] = [],
): Promise<{ config: TrainerConfig; extra: Raw }> {
  const flags = parseFlags(argv, extra);
  const extraValues: Raw = {};
  const flagValues: Raw = {};
  for (const [k, v] of Object.entries(flags.values)) {
    if ((configKeys() as readonly string[]).includes(k)) flagValues[k] = v;
    else extraValues[k] = v;
  }
  const path = flags.configPath ?? env[ENV.config];
  const fileValues = path !== undefined && path !== '' ? await readConfigFile(path) : {};
  const envLayer = envValues(env);
  const config = resolveConfig([
    { values: fileValues, source: `config file ${path ?? ''}` },
    { values: envLayer.values, source: 'environment', sources: envLayer.sources },
    { values: flagValues, source: 'flags', sources: flags.sources },
  ]);
  return { config, extra: extraValues };
}

/** SHA-256 over the fields that change a run's numbers; stored in checkpoints to refuse mismatches. */
export function configHash(c: TrainerConfig): string {
  const numeric: Raw = {};
  for (const k of configKeys()) if (!NON_NUMERIC_KEYS.has(k)) numeric[k] = c[k];
  return createHash('sha256').update(JSON.stringify(numeric)).digest('hex');
}

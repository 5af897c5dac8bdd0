/**
 * zod → structural OpenAPI v3 schema for a CRD. zod v4's `z.toJSONSchema` (target openapi-3.0, input
 * side so that defaulted fields are optional and carry `default`) does the walking; this file
 * rewrites its output into what apiextensions.k8s.io/v1 accepts (the "structural schema" rules:
 * a type on every node, no additionalProperties: false, anyOf only for int-or-string) and fails
 * loudly on anything outside the subset the API uses.
 */
import { z } from 'zod';

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** An OpenAPI v3 schema node. */
export type OpenApiSchema = { [key: string]: JsonValue };

/** Raised for a zod construct the CRD cannot express; the message names the path. */
export class SchemaConversionError extends Error {
  override name = 'SchemaConversionError';
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** Output key order: readable YAML and a stable byte-for-byte CRD. */
const KEY_ORDER = [
  'description',
  'type',
  'format',
  'enum',
  'default',
  'nullable',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'multipleOf',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'anyOf',
  'x-kubernetes-int-or-string',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
] as const;
const KNOWN_KEYS: ReadonlySet<string> = new Set(KEY_ORDER);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function toJson(v: unknown, path: string): JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new SchemaConversionError(`${path}: non-finite number`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => toJson(x, `${path}[${i}]`));
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x, `${path}.${k}`)]));
  throw new SchemaConversionError(`${path}: ${typeof v} is not JSON`);
}

/** int-or-string (core/v1 quantities): `anyOf: [{type: integer}, {type: string}]` plus the string's pattern. */
function intOrString(node: Record<string, unknown>, path: string): Record<string, unknown> {
  const branches = node['anyOf'];
  if (!Array.isArray(branches)) throw new SchemaConversionError(`${path}: x-kubernetes-int-or-string needs a union of an integer and a string`);
  const out: Record<string, unknown> = { ...node, anyOf: [{ type: 'integer' }, { type: 'string' }] };
  for (const b of branches) if (isObject(b) && b['type'] === 'string' && typeof b['pattern'] === 'string') out['pattern'] = b['pattern'];
  return out;
}

function normalise(input: unknown, path: string): OpenApiSchema {
  if (!isObject(input)) throw new SchemaConversionError(`${path}: schema is not an object`);
  let node: Record<string, unknown> = { ...input };
  delete node['$schema'];
  if (node['$ref'] !== undefined || node['$defs'] !== undefined || node['definitions'] !== undefined) {
    throw new SchemaConversionError(`${path}: references are not allowed in a CRD schema (a recursive or registered zod schema?)`);
  }
  if (node['x-kubernetes-int-or-string'] === true) node = intOrString(node, path);
  else if (node['anyOf'] !== undefined || node['oneOf'] !== undefined || node['allOf'] !== undefined || node['not'] !== undefined) {
    throw new SchemaConversionError(`${path}: unions are not structural; use an enum or separate optional fields`);
  }
  if (node['x-kubernetes-preserve-unknown-fields'] === true) {
    node['type'] = 'object';
    delete node['additionalProperties'];
  }
  // Structural schemas forbid additionalProperties: false; unknown fields are pruned (or rejected
  // with fieldValidation=Strict) by the API server anyway.
  if (node['additionalProperties'] === false) delete node['additionalProperties'];
  if (node['type'] === 'integer') {
    // zod bounds every int by ±MAX_SAFE_INTEGER; they say nothing here.
    if (node['minimum'] === Number.MIN_SAFE_INTEGER) delete node['minimum'];
    if (node['maximum'] === Number.MAX_SAFE_INTEGER) delete node['maximum'];
    const min = typeof node['minimum'] === 'number' ? node['minimum'] : -Infinity;
    const max = typeof node['maximum'] === 'number' ? node['maximum'] : Infinity;
    node['format'] = min >= INT32_MIN && max <= INT32_MAX ? 'int32' : 'int64';
  }
  // The API server checks date-time itself; zod's RFC 3339 regex is long and not RE2-friendly.
  if (node['format'] === 'date-time') delete node['pattern'];
  if (node['type'] === undefined && node['x-kubernetes-int-or-string'] !== true) {
    throw new SchemaConversionError(`${path}: every node of a structural schema needs a type (z.unknown()/z.any() outside a free-form object?)`);
  }
  for (const k of Object.keys(node)) if (!KNOWN_KEYS.has(k)) throw new SchemaConversionError(`${path}: unsupported keyword ${k}`);

  const out: OpenApiSchema = {};
  for (const k of KEY_ORDER) {
    const v = node[k];
    if (v === undefined) continue;
    if (k === 'properties') {
      if (!isObject(v)) throw new SchemaConversionError(`${path}: properties is not an object`);
      out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, normalise(s, `${path}.${name}`)]));
    } else if (k === 'items') {
      out[k] = normalise(v, `${path}[]`);
    } else if (k === 'additionalProperties') {
      out[k] = normalise(v, `${path}.*`);
    } else if (k === 'required' && Array.isArray(v) && v.length === 0) {
      continue;
    } else {
      out[k] = toJson(v, `${path}.${k}`);
    }
  }
  return out;
}

/** The structural OpenAPI v3 schema of the input side of `schema` (what users write). */
export function toStructuralSchema(schema: z.ZodType, path = '<root>'): OpenApiSchema {
  const raw = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw', reused: 'inline', cycles: 'throw' });
  return normalise(raw, path);
}

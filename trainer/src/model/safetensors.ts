/**
 * Reading and writing the safetensors format (huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?:
 * {string: string}}`, then the raw little-endian tensor bytes. Every field is validated, so a
 * truncated or foreign file fails with a message that names the file and the problem.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { CheckpointError } from '../errors.js';

/** A tensor read from a file, converted to fp32. */
export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** A whole file: tensors by name plus string metadata. */
export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, NamedTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

const DTYPE_BYTES = { F32: 4, F16: 2, BF16: 2, F64: 8 } as const;
type SupportedDtype = keyof typeof DTYPE_BYTES;

const EntrySchema = z.strictObject({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});
const MAX_HEADER = 100 * 1024 * 1024; // the format's own limit (100 MB)

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f === 0 ? s * Infinity : NaN;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function decode(dtype: SupportedDtype, bytes: Uint8Array, count: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
  }
  return out;
}

/** Parse a safetensors file held in memory; `source` names it in errors. */
export function parseSafetensors(buf: Uint8Array, source: string): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${source}: ${msg}`);
  };
  if (buf.byteLength < 8) fail(`truncated: ${buf.byteLength} bytes, no header`);
  const n = Number(new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER) fail(`header length ${n} exceeds the 100 MB limit (not a safetensors file?)`);
  if (8 + n > buf.byteLength) fail(`truncated: header says ${n} bytes but the file has ${buf.byteLength - 8}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('header is not a JSON object');
  const data = buf.subarray(8 + n);
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      const m = z.record(z.string(), z.string()).safeParse(raw);
      if (!m.success) fail('__metadata__ must map strings to strings');
      else metadata = m.data;
      continue;
    }
    const e = EntrySchema.safeParse(raw);
    if (!e.success) return fail(`tensor "${name}": malformed entry (${e.error.issues[0]?.message ?? 'invalid'})`);
    const {
      dtype,
      shape,
      data_offsets: [begin, end],
    } = e.data;
    if (!(dtype in DTYPE_BYTES)) fail(`tensor "${name}": unsupported dtype ${dtype} (F32, F16, BF16, F64 are read)`);
    const dt = dtype as SupportedDtype;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end < begin || end - begin !== count * DTYPE_BYTES[dt])
      fail(`tensor "${name}": offsets [${begin}, ${end}] do not match shape [${shape.join(', ')}] of ${dt}`);
    if (end > data.byteLength) fail(`truncated: tensor "${name}" ends at byte ${end} of the data section but only ${data.byteLength} bytes are present`);
    tensors.set(name, { shape, data: decode(dt, data.subarray(begin, end), count) });
  }
  return { tensors, metadata };
}

/** Read and parse a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

/** Serialise fp32 tensors (in the given order) and metadata to safetensors bytes. */
export function encodeSafetensors(tensors: ReadonlyArray<readonly [string, NamedTensor]>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new RangeError(`tensor ${name}: shape [${t.shape.join(', ')}] does not match ${t.data.length} values`);
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align data to 8 bytes
  const jsonBytes = Buffer.from(json, 'utf-8');
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  const dv = new DataView(out.buffer, 8 + jsonBytes.length);
  let pos = 0;
  for (const [, t] of tensors) {
    for (let i = 0; i < t.data.length; i++, pos += 4) dv.setFloat32(pos, t.data[i]!, true);
  }
  return out;
}

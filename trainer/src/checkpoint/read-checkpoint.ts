/**
 * Finding and reading checkpoints written by writeCheckpoint. Readers never write into the folder
 * they read: a torn or corrupt checkpoint is skipped (findLatestCheckpoint) or reported
 * (readCheckpoint), and the writer's next prune cleans it up.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { type ModelConfig, ModelConfigSchema } from '../model/config.js';
import { ParamLayout } from '../model/params.js';
import { type SafetensorsFile, parseSafetensors } from '../model/safetensors.js';
import { OptimizerParamsSchema } from '../optim/optimizer.js';
import { assembleParams, assertSameArchitecture } from './assemble.js';
import {
  CHECKPOINT_FILES,
  LATEST_FILE,
  MODEL_CONFIG_METADATA_KEY,
  type Manifest,
  checkAgainstManifest,
  parseSideDirName,
  parseStepDirName,
  readManifest,
  verifyCheckpoint,
} from './files.js';
import { type TrainerState, TrainerStateSchema } from './trainer-state.js';
import { type OptimizerSnapshot } from './write-checkpoint.js';

/** What readCheckpoint checks the checkpoint against. */
export interface ReadCheckpointExpect {
  /** The layout of the model this run builds; the stored architecture and tensors must match. */
  readonly layout?: ParamLayout;
  /** This run's config hash; the stored one must be equal. */
  readonly configHash?: string;
  /** This run's resolved config, used only to list the fields that differ on a hash mismatch. */
  readonly config?: Readonly<Record<string, unknown>>;
}

/** A checkpoint read back into memory. */
export interface LoadedCheckpoint {
  readonly path: string;
  readonly modelConfig: ModelConfig;
  /** Flat parameters in ParamLayout order. */
  readonly params: Float32Array;
  readonly optimizer: OptimizerSnapshot;
  readonly state: TrainerState;
}

/**
 * The newest usable checkpoint under `dir`: the one `latest` names if it verifies (sizes and
 * sha256), else the newest `step-*` folder that does. Undefined when there is none. Read-only.
 */
export async function findLatestCheckpoint(dir: string): Promise<string | undefined> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CheckpointError(`${dir}: cannot list (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const pointed = await readLatestPointer(dir);
  if (pointed !== undefined && entries.includes(pointed) && (await verifies(join(dir, pointed)))) return join(dir, pointed);
  // Candidates, newest first; a `.replaced-*` copy (a writer killed while replacing the same step)
  // ranks just after the step folder it was renamed from.
  const candidates = entries
    .map((entry) => {
      const step = parseStepDirName(entry);
      if (step !== undefined) return { entry, step, rank: 0 };
      const side = parseSideDirName(entry);
      return side?.kind === 'replaced' ? { entry, step: side.step, rank: 1 } : undefined;
    })
    .filter((c) => c !== undefined)
    .sort((a, b) => b.step - a.step || a.rank - b.rank);
  for (const c of candidates) {
    if (c.entry !== pointed && (await verifies(join(dir, c.entry)))) return join(dir, c.entry);
  }
  return undefined;
}

async function readLatestPointer(dir: string): Promise<string | undefined> {
  try {
    const name = (await readFile(join(dir, LATEST_FILE), 'utf-8')).trim();
    return parseStepDirName(name) === undefined ? undefined : name;
  } catch {
    return undefined;
  }
}

async function verifies(path: string): Promise<boolean> {
  try {
    await verifyCheckpoint(path, { sha256: true });
    return true;
  } catch (e) {
    if (e instanceof CheckpointError) return false;
    throw e;
  }
}

async function readVerified(ckpt: string, manifest: Manifest, name: string): Promise<Uint8Array> {
  const path = join(ckpt, name);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  checkAgainstManifest(manifest, ckpt, name, bytes);
  return bytes;
}

/** Parse the ModelConfig stored in a model file's metadata; undefined when absent. */
export function modelConfigFromMetadata(file: SafetensorsFile, source: string): ModelConfig | undefined {
  const raw = file.metadata[MODEL_CONFIG_METADATA_KEY];
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new CheckpointError(`${source}: metadata ${MODEL_CONFIG_METADATA_KEY} is not valid JSON`, { cause: e });
  }
  const parsed = ModelConfigSchema.safeParse(json);
  if (!parsed.success) throw new CheckpointError(`${source}: metadata ${MODEL_CONFIG_METADATA_KEY} is invalid (${z.prettifyError(parsed.error)})`);
  return parsed.data;
}

const OptimizerMetadataSchema = z.object({
  kind: OptimizerParamsSchema.shape.kind,
  step: z.coerce.number().int().nonnegative(),
  offset: z.coerce.number().int().nonnegative(),
  size: z.coerce.number().int().nonnegative(),
  total: z.coerce.number().int().nonnegative(),
});

/**
 * Read and verify the checkpoint folder `path` (manifest sizes and sha256 of every file, schemas,
 * architecture and tensor shapes, config hash). Throws CheckpointError naming the file and problem.
 */
export async function readCheckpoint(path: string, expect: ReadCheckpointExpect = {}): Promise<LoadedCheckpoint> {
  const manifest = await readManifest(path);
  const statePath = join(path, CHECKPOINT_FILES.state);
  const state = parseState(new TextDecoder().decode(await readVerified(path, manifest, CHECKPOINT_FILES.state)), statePath);
  if (state.step !== manifest.step) throw new CheckpointError(`${statePath}: step ${state.step} but the manifest says ${manifest.step}`);
  if (expect.configHash !== undefined && expect.configHash !== state.configHash) {
    throw new CheckpointError(
      `${statePath}: config hash ${state.configHash} differs from this run's ${expect.configHash}${describeConfigChange(state.config, expect.config)}`,
    );
  }

  const modelPath = join(path, CHECKPOINT_FILES.model);
  const model = parseSafetensors(await readVerified(path, manifest, CHECKPOINT_FILES.model), modelPath);
  const modelConfig = modelConfigFromMetadata(model, modelPath);
  if (modelConfig === undefined) throw new CheckpointError(`${modelPath}: metadata ${MODEL_CONFIG_METADATA_KEY} is missing`);
  if (expect.layout !== undefined) assertSameArchitecture(modelPath, modelConfig, expect.layout.config);
  const layout = expect.layout ?? new ParamLayout(modelConfig);
  const params = assembleParams(modelPath, model.tensors, layout);

  const optPath = join(path, CHECKPOINT_FILES.optimizer);
  const opt = parseSafetensors(await readVerified(path, manifest, CHECKPOINT_FILES.optimizer), optPath);
  const meta = OptimizerMetadataSchema.safeParse(opt.metadata);
  if (!meta.success) throw new CheckpointError(`${optPath}: invalid metadata (${z.prettifyError(meta.error)})`);
  const { kind, step, offset, size, total } = meta.data;
  if (offset !== 0 || size !== layout.size || total !== layout.size) {
    throw new CheckpointError(`${optPath}: holds entries [${offset}, ${offset + size}) of ${total}, this run needs all ${layout.size}`);
  }
  const m = opt.tensors.get('m');
  const v = opt.tensors.get('v');
  const extra = [...opt.tensors.keys()].filter((n) => n !== 'm' && n !== 'v');
  if (extra.length > 0) throw new CheckpointError(`${optPath}: unexpected tensors ${extra.join(', ')}`);
  if (m === undefined || m.shape.length !== 1 || m.data.length !== size) throw new CheckpointError(`${optPath}: tensor m must be a vector of ${size} entries`);
  const vSize = kind === 'adamw' ? size : 0;
  if ((v?.data.length ?? 0) !== vSize || (v !== undefined && v.shape.length !== 1)) {
    throw new CheckpointError(`${optPath}: tensor v must be ${vSize === 0 ? 'absent for sgd' : `a vector of ${vSize} entries`}`);
  }
  return { path, modelConfig, params, optimizer: { kind, step, m: m.data, v: v?.data ?? new Float32Array(0) }, state };
}

function parseState(text: string, source: string): TrainerState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${source}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  const parsed = TrainerStateSchema.safeParse(raw);
  if (!parsed.success) throw new CheckpointError(`${source}: invalid trainer state (${z.prettifyError(parsed.error)})`);
  return parsed.data;
}

/** Dotted keys whose values differ between two config records (nested objects are walked). */
export function changedConfigKeys(stored: Readonly<Record<string, unknown>>, current: Readonly<Record<string, unknown>>, prefix = ''): string[] {
  const keys = [...new Set([...Object.keys(stored), ...Object.keys(current)])].sort();
  const out: string[] = [];
  for (const k of keys) {
    const a = stored[k],
      b = current[k];
    if (isRecord(a) && isRecord(b)) out.push(...changedConfigKeys(a, b, `${prefix}${k}.`));
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${prefix}${k}`);
  }
  return out;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function describeConfigChange(stored: Readonly<Record<string, unknown>>, current: Readonly<Record<string, unknown>> | undefined): string {
  if (current === undefined) return '';
  const changed = changedConfigKeys(stored, current);
  if (changed.length === 0) return ' (the stored config has the same fields; the hash definition changed?)';
  const show = (x: unknown): string => {
    const s = x === undefined ? 'unset' : JSON.stringify(x);
    return s.length > 40 ? `${s.slice(0, 37)}...` : s;
  };
  const at = (rec: Readonly<Record<string, unknown>>, key: string): unknown => key.split('.').reduce<unknown>((o, p) => (isRecord(o) ? o[p] : undefined), rec);
  return `; changed: ${changed.map((k) => `${k} (${show(at(stored, k))} -> ${show(at(current, k))})`).join(', ')}`;
}

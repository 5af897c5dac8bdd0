/**
 * Loading base-model weights: our own checkpoints, a folder with a Hugging Face
 * `model.safetensors` (+ optional config.json), or a bare `.safetensors` file. Hugging Face GPT-2
 * files come with or without the `transformer.` prefix (the original `gpt2` repository has
 * `h.0.attn.c_attn.weight`), may carry the causal-mask buffers `attn.bias`/`attn.masked_bias`
 * (not parameters) and may store the tied `lm_head.weight` (a copy of wte).
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { type ModelConfig, ModelConfigSchema } from '../model/config.js';
import { ParamLayout } from '../model/params.js';
import { type NamedTensor, type SafetensorsFile, readSafetensors } from '../model/safetensors.js';
import { assembleParams } from './assemble.js';
import { CHECKPOINT_FILES, MODEL_CONFIG_METADATA_KEY, verifyCheckpoint } from './files.js';
import { HfGpt2ConfigSchema, modelFieldsFromHfConfig } from './hf-config.js';
import { modelConfigFromMetadata } from './read-checkpoint.js';

/** Base weights in our layout. */
export interface ModelWeights {
  readonly config: ModelConfig;
  /** Flat parameters in ParamLayout order. */
  readonly params: Float32Array;
  /** The safetensors file they came from. */
  readonly source: string;
}

const BUFFER = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;
const WTE = 'transformer.wte.weight';

/**
 * Load GPT-2 weights from a checkpoint folder, a folder holding model.safetensors, or a
 * .safetensors file; the architecture comes from our metadata, else config.json, else the tensor
 * shapes (nHead then needs config.json). Throws CheckpointError naming the file and problem.
 */
export async function loadModelWeights(path: string): Promise<ModelWeights> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    throw new CheckpointError(`${path}: cannot open base model (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const dir = isDir ? path : dirname(path);
  const source = isDir ? join(path, CHECKPOINT_FILES.model) : path;
  if (isDir && (await exists(join(dir, CHECKPOINT_FILES.manifest)))) await verifyCheckpoint(dir, { sha256: true });
  const file = await readSafetensors(source);
  const tensors = normalizeNames(file, source);
  const hfConfigPath = join(dir, CHECKPOINT_FILES.hfConfig); // also next to a bare .safetensors file
  const config = modelConfigFromMetadata(file, source) ?? (await configFromFiles(source, tensors, hfConfigPath));
  return { config, params: assembleParams(source, tensors, new ParamLayout(config)), source };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Map Hugging Face name variants onto our names; drop buffers; check a stored head is tied. */
function normalizeNames(file: SafetensorsFile, source: string): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  let head: NamedTensor | undefined;
  for (const [name, t] of file.tensors) {
    if (BUFFER.test(name)) continue;
    if (name === 'lm_head.weight') {
      head = t;
      continue;
    }
    const ours = name.startsWith('transformer.') ? name : `transformer.${name}`;
    if (out.has(ours)) throw new CheckpointError(`${source}: tensor ${ours} appears twice (with and without the "transformer." prefix)`);
    out.set(ours, t);
  }
  if (head !== undefined) {
    const wte = out.get(WTE);
    const tied =
      wte !== undefined &&
      wte.shape.length === head.shape.length &&
      wte.shape.every((d, i) => d === head.shape[i]) &&
      wte.data.every((x, i) => Object.is(x, head.data[i]));
    if (!tied) throw new CheckpointError(`${source}: lm_head.weight differs from ${WTE}; only a tied output head is supported`);
  }
  return out;
}

/** The architecture from config.json, completed (or replaced) by what the tensor shapes say. */
async function configFromFiles(source: string, tensors: ReadonlyMap<string, NamedTensor>, hfConfigPath: string): Promise<ModelConfig> {
  let fields: Partial<ModelConfig> = {};
  let text: string | undefined;
  try {
    text = await readFile(hfConfigPath, 'utf-8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new CheckpointError(`${hfConfigPath}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  if (text !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new CheckpointError(`${hfConfigPath}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
    const parsed = HfGpt2ConfigSchema.safeParse(raw);
    if (!parsed.success) throw new CheckpointError(`${hfConfigPath}: not a GPT-2 config (${z.prettifyError(parsed.error)})`);
    const r = modelFieldsFromHfConfig(parsed.data);
    if ('problem' in r) throw new CheckpointError(`${hfConfigPath}: ${r.problem}`);
    fields = r.fields;
  }
  // Fill what config.json does not say from the shapes: wte [V, C], wpe [T, C], blocks h.N.
  const wte = tensors.get(WTE)?.shape;
  const wpe = tensors.get('transformer.wpe.weight')?.shape;
  if (wte?.length !== 2 || wpe?.length !== 2) throw new CheckpointError(`${source}: cannot infer the architecture: wte/wpe tensors missing or not 2-D`);
  const blocks = new Set<number>();
  for (const name of tensors.keys()) {
    const m = /^transformer\.h\.(\d+)\./.exec(name);
    if (m !== null) blocks.add(Number(m[1]));
  }
  const inferred = { vocabSize: wte[0], nPositions: wpe[0], nEmbd: wte[1], nLayer: blocks.size };
  if (fields.nHead === undefined) {
    throw new CheckpointError(
      `${source}: cannot tell the number of attention heads: no ${MODEL_CONFIG_METADATA_KEY} metadata and no n_head in ${hfConfigPath}`,
    );
  }
  const parsed = ModelConfigSchema.safeParse({ ...inferred, ...fields });
  if (!parsed.success) throw new CheckpointError(`${source}: invalid architecture (${z.prettifyError(parsed.error)})`);
  return parsed.data;
}

/**
 * The on-disk layout of a checkpoint directory (docs/architecture.md §4) and its manifest:
 *
 *   <dir>/latest                     text: the folder name of the newest complete checkpoint
 *   <dir>/step-NNNNNNNN/             one checkpoint (8-digit optimizer step)
 *     model.safetensors  config.json  optimizer.safetensors  trainer-state.json
 *     manifest.json                  sha256 + byte size of every other file; written last
 *   <dir>/.tmp-step-NNNNNNNN-<pid>-<hex>        a checkpoint being written
 *   <dir>/.replaced-step-NNNNNNNN-<pid>-<hex>   an older copy of the same step being replaced
 *   <dir>/.deleting-step-NNNNNNNN-<pid>-<hex>   a pruned checkpoint being deleted
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CheckpointError } from '../errors.js';

/** File names inside a checkpoint folder. */
export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  hfConfig: 'config.json',
  optimizer: 'optimizer.safetensors',
  state: 'trainer-state.json',
  manifest: 'manifest.json',
} as const;

/** Name of the pointer file in the checkpoint root. */
export const LATEST_FILE = 'latest';

/** Safetensors metadata key holding the JSON ModelConfig. */
export const MODEL_CONFIG_METADATA_KEY = 'gmt.model_config';

const STEP_DIR = /^step-(\d{8})$/;
const SIDE_DIR = /^\.(tmp|replaced|deleting)-step-(\d{8})-(\d+)-[0-9a-f]+$/;
const LATEST_TMP = /^\.latest\.tmp-(\d+)-\d+$/;

/** The folder name of the checkpoint after `step` optimizer steps. */
export function stepDirName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0 || step > 99_999_999) throw new RangeError(`checkpoint step must be an integer in [0, 99999999], got ${step}`);
  return `step-${String(step).padStart(8, '0')}`;
}

/** The step of a `step-NNNNNNNN` folder name, or undefined for any other name. */
export function parseStepDirName(name: string): number | undefined {
  const m = STEP_DIR.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** A side folder (temporary, replaced or being deleted) of a writer, parsed from its name. */
export interface SideDir {
  readonly kind: 'tmp' | 'replaced' | 'deleting';
  readonly step: number;
  readonly pid: number;
}

/** Parse a side folder name; undefined for other names. */
export function parseSideDirName(name: string): SideDir | undefined {
  const m = SIDE_DIR.exec(name);
  if (m === null) return undefined;
  return { kind: m[1] as SideDir['kind'], step: Number(m[2]), pid: Number(m[3]) };
}

/** The pid of a writeFileAtomic temporary of the `latest` pointer; undefined for other names. */
export function parseLatestTmpName(name: string): number | undefined {
  const m = LATEST_TMP.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** Schema of manifest.json. */
export const ManifestSchema = z.strictObject({
  formatVersion: z.literal(1),
  step: z.number().int().nonnegative(),
  files: z.record(
    z.string(),
    z.strictObject({
      bytes: z.number().int().nonnegative(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    }),
  ),
});

/** A parsed manifest. */
export type Manifest = z.infer<typeof ManifestSchema>;

/** Hex sha256 of bytes in memory. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hex sha256 of a file, streamed (large model files are not held twice). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Read and validate `<ckpt>/manifest.json`; CheckpointError when missing or malformed. */
export async function readManifest(ckpt: string): Promise<Manifest> {
  const path = join(ckpt, CHECKPOINT_FILES.manifest);
  let text: string;
  try {
    text = await readFile(path, 'utf-8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? `${path}: missing (checkpoint incomplete)` : `${path}: cannot read (${code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) throw new CheckpointError(`${path}: malformed manifest (${z.prettifyError(parsed.error)})`);
  for (const required of [CHECKPOINT_FILES.model, CHECKPOINT_FILES.optimizer, CHECKPOINT_FILES.state]) {
    if (parsed.data.files[required] === undefined) throw new CheckpointError(`${path}: does not list ${required}`);
  }
  return parsed.data;
}

/** Throw unless `bytes` (the content of `<ckpt>/<name>`) matches its manifest entry. */
export function checkAgainstManifest(manifest: Manifest, ckpt: string, name: string, bytes: Uint8Array): void {
  checkEntry(manifest, ckpt, name, bytes.byteLength, () => sha256Hex(bytes));
}

function checkEntry(manifest: Manifest, ckpt: string, name: string, size: number, hash: (() => string) | undefined): void {
  const path = join(ckpt, name);
  const entry = manifest.files[name];
  if (entry === undefined) throw new CheckpointError(`${path}: not listed in the manifest`);
  if (size !== entry.bytes) throw new CheckpointError(`${path}: ${size} bytes but the manifest says ${entry.bytes} (file corrupt or truncated)`);
  if (hash !== undefined && hash() !== entry.sha256) throw new CheckpointError(`${path}: checksum mismatch (file corrupt or truncated)`);
}

/**
 * Verify a checkpoint folder against its manifest: every listed file present with its size and,
 * when `sha256` is set, its hash. Throws CheckpointError naming the first bad file. Read-only.
 */
export async function verifyCheckpoint(ckpt: string, opts: { readonly sha256: boolean } = { sha256: true }): Promise<Manifest> {
  const manifest = await readManifest(ckpt);
  for (const [name, entry] of Object.entries(manifest.files)) {
    const path = join(ckpt, name);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (e) {
      throw new CheckpointError(`${path}: missing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    if (size !== entry.bytes) checkEntry(manifest, ckpt, name, size, undefined);
    if (opts.sha256 && (await sha256File(path)) !== entry.sha256) throw new CheckpointError(`${path}: checksum mismatch (file corrupt or truncated)`);
  }
  return manifest;
}

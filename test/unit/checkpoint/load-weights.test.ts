import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModelWeights, writeCheckpoint } from '../../../trainer/src/checkpoint/index.js';
import { CheckpointError } from '../../../trainer/src/errors.js';
import { ParamLayout } from '../../../trainer/src/model/params.js';
import { type NamedTensor, encodeSafetensors } from '../../../trainer/src/model/safetensors.js';
import { MICRO, buildPayload, sameBits, tempDir, values } from './fixtures.js';

const layout = new ParamLayout(MICRO);

/** A config.json as Hugging Face's GPT2Config.save_pretrained writes it (abridged). */
const HF_CONFIG = {
  model_type: 'gpt2',
  architectures: ['GPT2LMHeadModel'],
  vocab_size: MICRO.vocabSize,
  n_positions: MICRO.nPositions,
  n_ctx: MICRO.nPositions,
  n_embd: MICRO.nEmbd,
  n_layer: MICRO.nLayer,
  n_head: MICRO.nHead,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
  resid_pdrop: 0.1,
  bos_token_id: 0,
  eos_token_id: 0,
};

/** Tensors named like the original `gpt2` repository: no `transformer.` prefix, mask buffers, optional head. */
function hfTensors(flat: Float32Array, head: 'none' | 'tied' | 'untied'): Array<readonly [string, NamedTensor]> {
  const out: Array<readonly [string, NamedTensor]> = [];
  for (const s of layout.slots) {
    out.push([s.name.replace(/^transformer\./, ''), { shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) }]);
    const block = /^transformer\.(h\.\d+)\.ln_1\.weight$/.exec(s.name);
    if (block !== null) {
      const T = MICRO.nPositions;
      out.push([`${block[1]}.attn.bias`, { shape: [1, 1, T, T], data: new Float32Array(T * T).fill(1) }]);
      out.push([`${block[1]}.attn.masked_bias`, { shape: [], data: new Float32Array([-1e4]) }]);
    }
  }
  const wte = layout.view(flat, 'transformer.wte.weight');
  if (head === 'tied') out.push(['lm_head.weight', { shape: [MICRO.vocabSize, MICRO.nEmbd], data: wte.slice() }]);
  if (head === 'untied') {
    const other = wte.slice();
    other[5] = other[5]! + 1;
    out.push(['lm_head.weight', { shape: [MICRO.vocabSize, MICRO.nEmbd], data: other }]);
  }
  return out;
}

/** Half-precision bits of x (x must be exactly representable as a normal f16 or zero). */
function f16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0,
    a = Math.abs(x),
    e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

/** A safetensors file with F16 tensors, written by hand (encodeSafetensors writes F32 only). */
function encodeF16(tensors: ReadonlyArray<readonly [string, NamedTensor]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F16', shape: t.shape, data_offsets: [offset, offset + 2 * t.data.length] };
    offset += 2 * t.data.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf-8');
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const [, t] of tensors)
    for (const x of t.data) {
      out.writeUInt16LE(f16Bits(x), pos);
      pos += 2;
    }
  return out;
}

const halfValues = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (((i * 37) % 129) - 64) / 64);

for (const head of ['none', 'tied'] as const) {
  test(`checkpoint - loadModelWeights reads Hugging Face names without the prefix (lm_head ${head})`, async (t) => {
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    const flat = values(layout.size, 9);
    await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(hfTensors(flat, head)));
    await writeFile(join(dir, 'config.json'), JSON.stringify(HF_CONFIG));
    const w = await loadModelWeights(dir);
    t.deepEqual(w.config, MICRO);
    t.true(sameBits(w.params, flat));
    t.is(w.source, join(dir, 'model.safetensors'));
  });
}

test('checkpoint - loadModelWeights refuses an untied lm_head', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(hfTensors(values(layout.size, 9), 'untied')));
  await writeFile(join(dir, 'config.json'), JSON.stringify(HF_CONFIG));
  await t.throwsAsync(loadModelWeights(dir), {
    instanceOf: CheckpointError,
    message: /model\.safetensors: lm_head\.weight differs from transformer\.wte\.weight/,
  });
});

test('checkpoint - loadModelWeights converts an F16 file', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const flat = halfValues(layout.size);
  const file = join(dir, 'weights.safetensors');
  await writeFile(file, encodeF16(hfTensors(flat, 'tied')));
  await writeFile(join(dir, 'config.json'), JSON.stringify(HF_CONFIG));
  const w = await loadModelWeights(file);
  t.deepEqual(w.config, MICRO);
  t.true(sameBits(w.params, flat));
});

test('checkpoint - loadModelWeights reads our own checkpoint folder and a bare file with metadata', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const payload = buildPayload(4);
  const path = await writeCheckpoint(dir, payload, { keep: 1 });
  for (const p of [path, join(path, 'model.safetensors')]) {
    const w = await loadModelWeights(p);
    t.deepEqual(w.config, MICRO);
    t.true(sameBits(w.params, payload.params));
  }
});

test('checkpoint - loadModelWeights needs n_head when there is no config', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(hfTensors(values(layout.size, 9), 'none')));
  await t.throwsAsync(loadModelWeights(dir), { instanceOf: CheckpointError, message: /cannot tell the number of attention heads/ });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ n_head: MICRO.nHead })); // the rest from shapes
  t.deepEqual((await loadModelWeights(dir)).config, MICRO);
});

const bad: ReadonlyArray<readonly [string, Record<string, unknown>, RegExp]> = [
  ['a wrong shape', { ...HF_CONFIG, n_positions: 8, n_ctx: 8 }, /tensor transformer\.wpe\.weight has shape \[16, 32\] but the model expects \[8, 32\]/],
  ['too few layers', { ...HF_CONFIG, n_layer: 1 }, /unexpected tensors not in the model: transformer\.h\.1\./],
  ['another activation', { ...HF_CONFIG, activation_function: 'relu' }, /config\.json: activation_function is "relu"/],
];
for (const [what, config, message] of bad) {
  test(`checkpoint - loadModelWeights reports ${what}`, async (t) => {
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(hfTensors(values(layout.size, 9), 'none')));
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await t.throwsAsync(loadModelWeights(dir), { instanceOf: CheckpointError, message });
  });
}

test('checkpoint - loadModelWeights of a missing path names it', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await mkdir(join(dir, 'empty'));
  await t.throwsAsync(loadModelWeights(join(dir, 'nope')), { instanceOf: CheckpointError, message: /nope: cannot open base model \(ENOENT\)/ });
  await t.throwsAsync(loadModelWeights(join(dir, 'empty')), { instanceOf: CheckpointError, message: /empty\/model\.safetensors: cannot read \(ENOENT\)/ });
});

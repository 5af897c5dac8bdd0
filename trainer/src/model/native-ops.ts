/**
 * TensorFlow kernels that TensorFlow.js does not expose as ops, called by name through tfjs-node's
 * backend (`executeSingleOutput`/`executeMultipleOutputs`, the same entry its own kernels use). Only
 * for the native backend (docs/native-backend.md, "Model code on the native path"); the results are
 * ordinary engine tensors, so tidy() and dispose() manage them. Used inside customGrad forward and
 * gradient functions only: the autodiff tape does not see raw kernels.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { enableNativeHost, setNativeHost, type NativeHostFns } from '../native/host.js';

/** An attribute of a TensorFlow op as tfjs-node's binding takes it (type: TF_ATTR_* code). */
interface OpAttr {
  readonly name: string;
  readonly type: number;
  readonly value: number | boolean | string;
}

/** The part of tfjs-node's NodeJSKernelBackend used here. */
interface NativeBackend {
  readonly isUsingGpuDevice: boolean;
  readonly binding: { readonly TF_ATTR_TYPE: number; readonly TF_ATTR_FLOAT: number; readonly TF_FLOAT: number; readonly TF_INT32: number };
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}

function isNativeBackend(b: unknown): b is NativeBackend {
  if (typeof b !== 'object' || b === null) return false;
  const o = b as Record<string, unknown>;
  const binding = o['binding'] as Record<string, unknown> | undefined;
  return (
    typeof o['isUsingGpuDevice'] === 'boolean' &&
    typeof o['executeSingleOutput'] === 'function' &&
    typeof o['executeMultipleOutputs'] === 'function' &&
    typeof binding?.['TF_ATTR_TYPE'] === 'number' &&
    typeof binding['TF_ATTR_FLOAT'] === 'number' &&
    typeof binding['TF_FLOAT'] === 'number' &&
    typeof binding['TF_INT32'] === 'number'
  );
}

function nativeBackend(): NativeBackend {
  const b = tf.backend();
  if (!isNativeBackend(b)) throw new Error(`native TensorFlow kernels requested on the ${tf.getBackend()} backend`);
  return b;
}

function floatAttr(b: NativeBackend, name: string, value: number): OpAttr {
  return { name, type: b.binding.TF_ATTR_FLOAT, value };
}

function typeAttr(b: NativeBackend, name: string, dtype: 'float32' | 'int32'): OpAttr {
  return { name, type: b.binding.TF_ATTR_TYPE, value: dtype === 'float32' ? b.binding.TF_FLOAT : b.binding.TF_INT32 };
}

/**
 * Whether the kernels run on a GPU. TensorFlow's GPU kernel of SparseSoftmaxCrossEntropyWithLogits is
 * not deterministic and fails under TF_DETERMINISTIC_OPS (core/kernels/sparse_xent_op.cc), which the
 * backend sets by default, so callers keep the generic path there. Untested until a GPU is lent.
 */
export function nativeOnGpu(): boolean {
  return nativeBackend().isUsingGpuDevice;
}

/**
 * TensorFlow's SparseSoftmaxCrossEntropyWithLogits: per row, the loss −log softmax(logits)[label] and
 * its gradient softmax(logits) − onehot(label), in one kernel (one pass over [N, V] for each).
 * logits [N, V] float32, labels [N] int32 in [0, V).
 */
export function sparseSoftmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): { loss: tf.Tensor1D; backprop: tf.Tensor2D } {
  const b = nativeBackend();
  const [loss, backprop] = b.executeMultipleOutputs(
    'SparseSoftmaxCrossEntropyWithLogits',
    [typeAttr(b, 'T', 'float32'), typeAttr(b, 'Tlabels', 'int32')],
    [logits, labels],
    2,
  );
  if (loss === undefined || backprop === undefined) throw new Error('SparseSoftmaxCrossEntropyWithLogits returned fewer than 2 outputs');
  return { loss: loss as tf.Tensor1D, backprop: backprop as tf.Tensor2D };
}

/** TensorFlow's SigmoidGrad: dy·y·(1 − y) in one pass (y = sigmoid(x), same shapes). */
export function sigmoidGrad(y: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const b = nativeBackend();
  return b.executeSingleOutput('SigmoidGrad', [typeAttr(b, 'T', 'float32')], [y, dy]);
}

// ---- GMT's fused CPU kernels (trainer/native/gmt_ops.cc, built by `npm run setup:native`)

/** The op library's interface version this code calls; gmt_ops.cc exports the same number. */
export const FUSED_KERNELS_ABI = 6;

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', 'a function');
const FusedLibrarySchema = z.object({
  ops: z.array(z.string()),
  abi: z.number(),
  adamwDense: fn,
  adamwKeep: fn,
  adamwThreshold: fn,
  blockSquares: fn,
  scale: fn,
  compact: fn,
  keyHistogram: fn,
  countAboveAndIn: fn,
});

/** Whether GMT's fused CPU kernels are loaded into TensorFlow, and why (not). */
export interface FusedKernelsStatus {
  readonly loaded: boolean;
  readonly reason: string;
}

let fused: FusedKernelsStatus = { loaded: false, reason: 'native backend not loaded' };
let enabled = true;

/** The CPU features the library is compiled for (scripts/setup-native.ts: -mavx2 -mfma). */
function cpuHasAvx2Fma(): boolean {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? [];
    return flags.includes('avx2') && flags.includes('fma');
  } catch {
    return false;
  }
}

/**
 * Loads the fused kernels' library (an N-API module whose static initialisers register the ops with
 * TensorFlow) once tfjs-node is loaded. Missing or unusable, the model keeps TensorFlow's own kernels
 * (same results within the golden tolerances, slower); the status says why.
 */
export function loadFusedKernels(path: string, onGpu: boolean, threads: number, use = true): FusedKernelsStatus {
  setNativeHost(undefined, threads);
  if (!cpuHasAvx2Fma()) fused = { loaded: false, reason: 'CPU lacks AVX2/FMA, which the fused kernels are compiled for; TensorFlow kernels' };
  else {
    try {
      const raw: unknown = createRequire(import.meta.url)(path);
      const lib = FusedLibrarySchema.parse(raw);
      if (lib.abi !== FUSED_KERNELS_ABI) throw new Error(`interface ${lib.abi}, this trainer needs ${FUSED_KERNELS_ABI}: rerun \`npm run setup:native\``);
      setNativeHost(raw as NativeHostFns, threads); // the schema checked that the functions exist
      // The TensorFlow kernels are CPU-only: on a GPU the model keeps TensorFlow's (the AdamW runs on the host either way).
      fused = onGpu
        ? { loaded: false, reason: 'GPU device: the fused kernels are CPU-only; TensorFlow kernels (native host loops)' }
        : { loaded: true, reason: `fused CPU kernels loaded (${lib.ops.join(', ')}; native host loops)` };
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      fused = { loaded: false, reason: `fused CPU kernels unavailable (${msg}); TensorFlow kernels` };
    }
  }
  return enableFusedKernels(use);
}

/**
 * Turns the use of loaded fused kernels on or off (config `fusedKernels`; tests compare both paths in
 * one process). Returns whether they are in use now, and why (not).
 */
export function enableFusedKernels(on: boolean): FusedKernelsStatus {
  enabled = on;
  enableNativeHost(on);
  if (!fused.loaded) return fused;
  return on ? fused : { loaded: false, reason: 'fused kernels off (fusedKernels: false); TensorFlow kernels' };
}

/** Whether the model calls the fused kernels: loaded, enabled, and the native CPU backend active. */
export function fusedKernels(): boolean {
  return fused.loaded && enabled && tf.getBackend() === 'tensorflow';
}

/** y = gelu(u + b) (tanh approximation), u [N, F], b [F]: one pass instead of a bias add and six. */
export function biasGelu(u: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const nb = nativeBackend();
  return nb.executeSingleOutput('GmtBiasGelu', [], [u, b]) as tf.Tensor2D;
}

/** dy·gelu′(u + b): the gradient of biasGelu with respect to u (and, summed over rows, b). */
export function biasGeluGrad(dy: tf.Tensor2D, u: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const nb = nativeBackend();
  return nb.executeSingleOutput('GmtBiasGeluGrad', [], [dy, u, b]) as tf.Tensor2D;
}

function three<T extends tf.Tensor>(name: string, out: tf.Tensor[]): [T, tf.Tensor1D, tf.Tensor1D] {
  const [a, b, c] = out;
  if (a === undefined || b === undefined || c === undefined) throw new Error(`${name} returned fewer than 3 outputs`);
  return [a as T, b as tf.Tensor1D, c as tf.Tensor1D];
}

/** LayerNorm over rows of x [N, C] in one pass: y, and each row's mean and 1/√(var + ε) [N]. */
export function layerNormForward(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): { y: tf.Tensor2D; mean: tf.Tensor1D; rstd: tf.Tensor1D } {
  const nb = nativeBackend();
  const [y, mean, rstd] = three<tf.Tensor2D>('GmtLayerNorm', nb.executeMultipleOutputs('GmtLayerNorm', [floatAttr(nb, 'epsilon', eps)], [x, g, b], 3));
  return { y, mean, rstd };
}

/** LayerNorm's gradient: dx [N, C], dgamma and dbeta [C] (column sums in a fixed order). */
export function layerNormBackward(
  dy: tf.Tensor2D,
  x: tf.Tensor2D,
  mean: tf.Tensor1D,
  rstd: tf.Tensor1D,
  g: tf.Tensor1D,
): { dx: tf.Tensor2D; dg: tf.Tensor1D; db: tf.Tensor1D } {
  const nb = nativeBackend();
  const [dx, dg, db] = three<tf.Tensor2D>('GmtLayerNormGrad', nb.executeMultipleOutputs('GmtLayerNormGrad', [], [dy, x, mean, rstd, g], 3));
  return { dx, dg, db };
}

/** Causal softmax over the last axis of scores [..., T, T]: row i over keys 0..i, zero above the diagonal. */
export function causalSoftmax<T extends tf.Tensor>(scores: T): T {
  const nb = nativeBackend();
  return nb.executeSingleOutput('GmtCausalSoftmax', [], [scores]) as T;
}

/** Softmax gradient p·(dp − Σ p·dp) per row of the last axis, in one pass. */
export function softmaxGrad<T extends tf.Tensor>(p: T, dp: T): T {
  const nb = nativeBackend();
  return nb.executeSingleOutput('GmtSoftmaxGrad', [], [p, dp]) as T;
}

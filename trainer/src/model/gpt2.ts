/**
 * The GPT-2 decoder in TensorFlow.js: learned positions, pre-LayerNorm blocks, GELU (tanh
 * approximation, HF "gelu_new") MLP, causal multi-head attention, tied output head. Reads top-down:
 * the small parts, then a block, then the whole model, then loss/gradients and generation logits.
 *
 * Two kernel paths, chosen per call from the active backend (the maths is the same; golden tests
 * check both against PyTorch):
 * - native TensorFlow (tfjs-node/-gpu): everything runs as TensorFlow ops. Matmuls use the
 *   transpose flags (BatchMatMulV2 adj_x/adj_y, no explicit transposes), and the embedding lookup is
 *   differentiated, so its gradient is TensorFlow's UnsortedSegmentSum (sequential, hence
 *   deterministic, on the CPU) added into wte's gradient without a JavaScript loop.
 * - wasm and cpu: the wasm backend lacks UnsortedSegmentSum and runs transposed matmuls 15-20×
 *   slower than plain ones, so matmuls get a custom gradient with explicit transposes, and the
 *   lookup runs outside the differentiated function: we differentiate with respect to the looked-up
 *   embeddings and scatter-add that gradient into wte on the CPU, in row order (deterministic).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.js';
import {
  biasGelu,
  biasGeluGrad,
  causalSoftmax,
  fusedKernels,
  layerNormBackward,
  layerNormForward,
  nativeOnGpu,
  sigmoidGrad,
  softmaxGrad,
  sparseSoftmaxCrossEntropy,
} from './native-ops.js';
import { ParamLayout } from './params.js';

/** Token ids and next-token targets of one micro-batch, both [B*T] row-major; target -1 = no loss. */
export interface TokenBatch {
  readonly inputs: Int32Array;
  readonly targets: Int32Array;
  readonly batchSize: number;
  readonly seqLen: number;
}

/** Loss (mean over loss tokens) and the flat gradient of one micro-batch. */
export interface LossAndGrads {
  readonly loss: number;
  readonly lossTokens: number;
  readonly grads: Float32Array;
}

type Params = ReadonlyMap<string, tf.Tensor>;

const GELU_C = Math.sqrt(2 / Math.PI);

function param(p: Params, name: string): tf.Tensor {
  const t = p.get(name);
  if (t === undefined) throw new Error(`missing parameter ${name}`);
  return t;
}

/** Σ over rows of x [N, C] → [C]: on native kernels as 1ᵀ @ x (about 2× TensorFlow's column Sum). */
function columnSum(x: tf.Tensor2D): tf.Tensor1D {
  if (!nativeKernels()) return tf.sum(x, 0);
  return tf.reshape(tf.matMul(tf.ones([1, x.shape[0]]), x), [x.shape[1]]);
}

/**
 * LayerNorm over the last axis: (x − mean)/sqrt(var + eps)·g + b, biased variance as in PyTorch.
 * x: [N, C]. The gradient is written out (the textbook closed form) instead of differentiating the
 * nine ops of the forward pass: fewer full-size elementwise passes, which dominate the step on native
 * kernels once the matmuls are fast.
 */
function layerNormWithEps(eps: number): (x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor) => tf.Tensor2D {
  return tf.customGrad<tf.Tensor2D>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, g, b, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const C = x.shape[1];
    // Means as sum·(1/C): tfjs-node's Mean kernel copies its input (a float32 → float32 Cast) first.
    const xc = tf.sub(x, tf.mul(tf.sum(x, -1, true), 1 / C));
    const rstd = tf.rsqrt(tf.add(tf.mul(tf.sum(tf.square(xc), -1, true), 1 / C), eps)); // [N, 1]
    const xhat = tf.mul(xc, rstd); // [N, C]
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sr, sg] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const C = sx.shape[1];
        // dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat · xhat)), dxhat = dy·g, means over the
        // last axis. Both means are matrix-vector products with g/C (dy·xhat is needed for g's gradient
        // anyway), which read their operand once instead of writing dxhat·xhat out first.
        const dyx = tf.mul<tf.Tensor2D>(dy, sx); // [N, C]
        const gc = tf.reshape(tf.mul(sg, 1 / C), [C, 1]);
        const m1 = tf.matMul(dy, gc); // [N, 1] = mean(dxhat)
        const m2 = tf.matMul(dyx, gc); // [N, 1] = mean(dxhat · xhat)
        const dx = tf.mul(tf.sub(tf.sub(tf.mul(dy, sg), m1), tf.mul(sx, m2)), sr);
        return [dx, columnSum(dyx), columnSum(dy as tf.Tensor2D)];
      },
    };
  });
}
/** LayerNorm as two fused kernels (native CPU): one pass forward, one pass (plus fixed-order column sums) back. */
function fusedLayerNormWithEps(eps: number): (x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor) => tf.Tensor2D {
  return tf.customGrad<tf.Tensor2D>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, g, b, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const { y, mean, rstd } = layerNormForward(x, g, b, eps);
    save([x, mean, rstd, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sm, sr, sg] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const { dx, dg, db } = layerNormBackward(dy as tf.Tensor2D, sx, sm, sr, sg);
        return [dx, dg, db];
      },
    };
  });
}
const layerNorms = new Map<string, ReturnType<typeof layerNormWithEps>>();
function layerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor2D {
  const fused = fusedKernels();
  const key = `${fused ? 'fused' : 'ops'}:${eps}`;
  let f = layerNorms.get(key);
  if (f === undefined) {
    f = fused ? fusedLayerNormWithEps(eps) : layerNormWithEps(eps);
    layerNorms.set(key, f);
  }
  return f(x, g, b);
}

const GELU_A = 2 * GELU_C,
  GELU_B = 2 * GELU_C * 0.044715;

/**
 * GELU, tanh approximation (HF "gelu_new"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed as
 * x·σ(z) with z = x·(a + b·x²), a = 2√(2/π), b = 2·0.044715·√(2/π) (since ½(1 + tanh u) = σ(2u)): six
 * elementwise passes forward and a closed-form gradient σ + x·σ(1−σ)·(a + 3b·x²), instead of
 * differentiating nine.
 */
const gelu = tf.customGrad<tf.Tensor>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const sq = tf.square(x);
  const sig = tf.sigmoid(tf.mul(x, tf.add(tf.mul(sq, GELU_B), GELU_A)));
  save([x, sq, sig]);
  return {
    value: tf.mul(x, sig),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, ssq, ss] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const xdz = tf.mul(sx, tf.add(tf.mul(ssq, 3 * GELU_B), GELU_A)); // x·dz/dx
      // Native: dy·(σ + SigmoidGrad(σ, x·dz/dx)), SigmoidGrad = v·σ(1−σ) in one pass: two full-size passes fewer.
      if (nativeKernels()) return [tf.mul(dy, tf.add(ss, sigmoidGrad(ss, xdz)))];
      return [tf.mul(dy, tf.add(ss, tf.mul(tf.mul(ss, tf.sub(1, ss)), xdz)))];
    },
  };
});

/**
 * gelu(x @ W + b) with the bias add and GELU in one fused kernel each way (native CPU): forward keeps
 * the pre-activation u = x @ W, backward dp = GmtBiasGeluGrad(dy, u, b), then dx = dp @ Wᵀ,
 * dW = xᵀ @ dp, db = 1ᵀ @ dp.
 */
const linearGeluFused = tf.customGrad<tf.Tensor2D>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  const u = tf.matMul<tf.Tensor2D>(x, w);
  save([x, w, u, b]);
  return {
    value: biasGelu(u, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw, su, sb] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
      const dp = biasGeluGrad(dy as tf.Tensor2D, su, sb);
      return [tf.matMul(dp, sw, false, true), tf.matMul(sx, dp, true, false), columnSum(dp)];
    },
  };
});

/** Swap the last two axes. */
function transposeLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  const perm = [...Array(r).keys()];
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return tf.transpose(x, perm);
}

/**
 * a @ b (rank 2, or batched rank 3-4 with equal batch dims) whose gradient uses explicit transposes
 * and plain matmuls: dA = dY @ bᵀ, dB = aᵀ @ dY. TensorFlow.js's own matMul gradient uses the
 * transposeA/transposeB flags, which the wasm backend runs 15-20× slower than a plain matmul
 * (measured: 1.2 vs 21.6 GFLOP/s for [512,384]@[384,128]); an explicit transpose costs O(n).
 */
const mm = tf.customGrad<tf.Tensor>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy, transposeLast(sb)), tf.matMul(transposeLast(sa), dy)];
    },
  };
});

/** Whether the active backend is native TensorFlow (see the file comment for what changes). */
function nativeKernels(): boolean {
  return tf.getBackend() === 'tensorflow';
}

/** a @ b, or a @ bᵀ with `transposeB`, on the kernel path of the active backend. */
function matmul(a: tf.Tensor, b: tf.Tensor, transposeB = false): tf.Tensor {
  if (nativeKernels()) return tf.matMul(a, b, false, transposeB);
  return mm(a, transposeB ? transposeLast(b) : b);
}

/**
 * x @ W + b on native kernels with its gradient written out: dx = dy @ Wᵀ, dW = xᵀ @ dy (transpose
 * flags), db = 1ᵀ @ dy. The bias gradient as a [1, N] @ [N, out] matmul runs about 2× faster than
 * TensorFlow's column Sum, which is what the broadcast add's own gradient uses.
 */
const linearNative = tf.customGrad<tf.Tensor2D>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.add<tf.Tensor2D>(tf.matMul(x, w), b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const d = dy as tf.Tensor2D;
      return [tf.matMul(d, sw, false, true), tf.matMul(sx, d, true, false), columnSum(d)];
    },
  };
});

/** x @ W + b for a Hugging Face Conv1D (W stored [in, out]). x: [N, in] → [N, out]. */
function linear(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  if (nativeKernels()) return linearNative(x, w, b);
  return tf.add<tf.Tensor2D>(matmul(x, w), b);
}

/** Tied output head: h @ wteᵀ. h: [N, C] → logits [N, V]. */
function head(h: tf.Tensor, wte: tf.Tensor): tf.Tensor2D {
  return matmul(h, wte, true) as tf.Tensor2D;
}

/** The causal additive bias [T, T]: 0 on and below the diagonal, −1e9 above (softmax → exactly 0). */
function causalBias(T: number): tf.Tensor2D {
  const bias = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) bias[i * T + j] = -1e9;
  return tf.tensor2d(bias, [T, T]);
}

/**
 * The attention core on native kernels, with its gradient written out: qkv [B*T, 3C] → the heads'
 * outputs merged back to [B*T, C]. One transpose splits q, k, v into heads ([B, T, 3, nh, hs] →
 * [3, B, nh, T, hs]) instead of a split and three transposes (and their gradients, a concat and three
 * more). The softmax gradient uses rowsum(dP·P) = rowsum(dY·Y) (FlashAttention's identity: both are
 * Σ_j P_ij dY_i·V_j), computed on [B, nh, T, hs] instead of on the T/hs× larger [B, nh, T, T] scores,
 * so dS = P·(dP − D) is two full-size passes instead of four.
 */
function attentionCore(B: number, T: number, nh: number, hs: number, bias: tf.Tensor): (qkv: tf.Tensor2D) => tf.Tensor2D {
  const C = nh * hs,
    scale = 1 / Math.sqrt(hs);
  // Fused kernels (native CPU): the causal mask and softmax in one pass (GmtCausalSoftmax, no bias add),
  // and dS = P·(dP − rowsum(P·dP)) in one pass (GmtSoftmaxGrad) instead of the rowsum(dY·Y) form below.
  const fused = fusedKernels();
  return tf.customGrad<tf.Tensor2D>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [qkv, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const heads = tf.transpose(tf.reshape(qkv, [B, T, 3, nh, hs]), [2, 0, 3, 1, 4]); // [3, B, nh, T, hs]
    const [q, k, v] = tf.unstack(heads) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D]; // [B, nh, T, hs]
    const qs = tf.mul(q, scale); // the 1/√hs scale on q: T/hs× less work than on the scores
    const scores = tf.matMul(qs, k, false, true); // [B, nh, T, T]
    const pr = fused ? causalSoftmax(scores) : tf.softmax(tf.add(scores, bias));
    const y = tf.matMul(pr, v); // [B, nh, T, hs]
    save([qs, k, v, pr, y]);
    return {
      value: tf.reshape<tf.Rank.R2>(tf.transpose(y, [0, 2, 1, 3]), [B * T, C]),
      gradFunc: (dm: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, sp, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const dy = tf.transpose(tf.reshape(dm, [B, T, nh, hs]), [0, 2, 1, 3]); // [B, nh, T, hs]
        const dp = tf.matMul(dy, sv, false, true); // [B, nh, T, T]
        const ds = fused ? softmaxGrad(sp, dp) : tf.mul(sp, tf.sub(dp, tf.sum(tf.mul(dy, sy), -1, true))); // P·(dP − rowsum(dY·Y))
        const dq = tf.mul(tf.matMul(ds, sk), scale);
        const dk = tf.matMul(ds, sq, true, false);
        const dv = tf.matMul(sp, dy, true, false);
        return [tf.reshape(tf.transpose(tf.stack([dq, dk, dv]), [1, 3, 0, 2, 4]), [B * T, 3 * C])]; // [B*T, 3C]
      },
    };
  });
}

/** Multi-head causal self-attention. x: [B*T, C] → [B*T, C]. */
function attention(cfg: ModelConfig, p: Params, l: number, x: tf.Tensor2D, B: number, T: number, bias: tf.Tensor): tf.Tensor2D {
  const C = cfg.nEmbd,
    nh = cfg.nHead,
    hs = C / nh;
  const pre = `transformer.h.${l}.attn`;
  const qkv = linear(x, param(p, `${pre}.c_attn.weight`), param(p, `${pre}.c_attn.bias`)); // [B*T, 3C]
  if (nativeKernels()) return linear(attentionCore(B, T, nh, hs, bias)(qkv), param(p, `${pre}.c_proj.weight`), param(p, `${pre}.c_proj.bias`));
  const [q, k, v] = tf.split(qkv, 3, 1).map(
    (t) => tf.transpose(tf.reshape(t, [B, T, nh, hs]), [0, 2, 1, 3]), // [B, nh, T, hs]
  ) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  // The 1/√hs scale goes on q ([B, nh, T, hs]) rather than on the scores ([B, nh, T, T]): T/hs× less work.
  const scores = tf.add(matmul(tf.mul(q, 1 / Math.sqrt(hs)), k, true), bias); // [B, nh, T, T]
  const y = matmul(tf.softmax(scores, -1), v); // [B, nh, T, hs]
  const merged = tf.reshape<tf.Rank.R2>(tf.transpose(y, [0, 2, 1, 3]), [B * T, C]); // [B*T, C]
  return linear(merged, param(p, `${pre}.c_proj.weight`), param(p, `${pre}.c_proj.bias`));
}

/** Feed-forward: c_proj(gelu(c_fc(x))). x: [B*T, C] → [B*T, C] via [B*T, 4C]. */
function mlp(p: Params, l: number, x: tf.Tensor2D): tf.Tensor2D {
  const pre = `transformer.h.${l}.mlp`;
  const w = param(p, `${pre}.c_fc.weight`),
    b = param(p, `${pre}.c_fc.bias`);
  const h = fusedKernels() ? linearGeluFused(x, w, b) : (gelu(linear(x, w, b)) as tf.Tensor2D);
  return linear(h, param(p, `${pre}.c_proj.weight`), param(p, `${pre}.c_proj.bias`));
}

/** One pre-LayerNorm block: x + attn(ln_1(x)), then + mlp(ln_2(x)). x: [B*T, C]. */
function block(cfg: ModelConfig, p: Params, l: number, x: tf.Tensor2D, B: number, T: number, bias: tf.Tensor): tf.Tensor2D {
  const pre = `transformer.h.${l}`;
  const eps = cfg.layerNormEps;
  const a = attention(cfg, p, l, layerNorm(x, param(p, `${pre}.ln_1.weight`), param(p, `${pre}.ln_1.bias`), eps), B, T, bias);
  const x1 = tf.add<tf.Tensor2D>(x, a);
  const m = mlp(p, l, layerNorm(x1, param(p, `${pre}.ln_2.weight`), param(p, `${pre}.ln_2.bias`), eps));
  return tf.add<tf.Tensor2D>(x1, m);
}

/** The trunk: token embeddings [B*T, C] (already looked up) → final hidden states [B*T, C]. */
function trunk(cfg: ModelConfig, p: Params, tokEmb: tf.Tensor, B: number, T: number): tf.Tensor2D {
  const C = cfg.nEmbd;
  const pos = tf.slice(param(p, 'transformer.wpe.weight'), [0, 0], [T, C]); // [T, C]
  let x = tf.reshape<tf.Rank.R2>(tf.add(tf.reshape(tokEmb, [B, T, C]), pos), [B * T, C]);
  const bias = causalBias(T);
  for (let l = 0; l < cfg.nLayer; l++) x = block(cfg, p, l, x, B, T, bias);
  return layerNorm(x, param(p, 'transformer.ln_f.weight'), param(p, 'transformer.ln_f.bias'), cfg.layerNormEps);
}

/**
 * Σ_i w_i · −log softmax(logits_i)[target_i], the weighted cross-entropy summed over rows. logits
 * [N, V]; targets [N] (any id in [0, V) where w_i = 0); weights [N]. On native kernels the loss and its
 * gradient come from one SparseSoftmaxCrossEntropyWithLogits kernel (no [N, V] one-hot, no separate
 * log-softmax and exp passes); elsewhere, and on a GPU (see nativeOnGpu), log-softmax against a
 * weighted one-hot.
 */
function weightedCrossEntropy(logits: tf.Tensor2D, targets: Int32Array, weights: Float32Array): tf.Scalar {
  const [N, V] = logits.shape;
  const w = tf.tensor1d(weights);
  if (!nativeKernels() || nativeOnGpu()) {
    const onehotW = tf.mul(tf.oneHot(tf.tensor1d(targets, 'int32'), V), tf.reshape(w, [N, 1])); // [N, V]
    return tf.neg(tf.sum<tf.Scalar>(tf.mul(tf.logSoftmax(logits), onehotW)));
  }
  const labels = tf.tensor1d(targets, 'int32');
  const xent = tf.customGrad<tf.Scalar>((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [lg, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const { loss, backprop } = sparseSoftmaxCrossEntropy(lg, labels);
    save([backprop, w]); // gradFunc may use only saved tensors: the forward pass's others are disposed by then
    return {
      value: tf.sum<tf.Scalar>(tf.mul(loss, w)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sb, sw] = saved as [tf.Tensor2D, tf.Tensor1D];
        return [tf.mul(sb, tf.reshape(tf.mul(sw, dy), [N, 1]))];
      },
    };
  });
  return xent(logits);
}

/** The model: parameter layout plus the differentiable forward pass. Stateless between calls. */
export class Gpt2Model {
  readonly layout: ParamLayout;

  constructor(readonly config: ModelConfig) {
    this.layout = new ParamLayout(config);
  }

  private tensors(flat: Float32Array): Map<string, tf.Tensor> {
    return new Map(this.layout.slots.map((s) => [s.name, tf.tensor(flat.subarray(s.offset, s.offset + s.size), [...s.shape], 'float32')]));
  }

  private checkBatch(b: TokenBatch): void {
    const n = b.batchSize * b.seqLen;
    if (b.inputs.length !== n || b.targets.length !== n) throw new RangeError(`batch arrays must hold ${n} = B·T entries`);
    if (b.seqLen > this.config.nPositions) throw new RangeError(`sequence length ${b.seqLen} exceeds nPositions ${this.config.nPositions}`);
    const V = this.config.vocabSize;
    for (let i = 0; i < n; i++) {
      const id = b.inputs[i]!,
        tg = b.targets[i]!;
      if (id < 0 || id >= V || tg < -1 || tg >= V) throw new RangeError(`token id out of range [0, ${V}) at flat position ${i}`);
    }
  }

  /**
   * Mean cross-entropy over the positions with a target, and its gradient with respect to every
   * parameter as one flat vector (layout order). `into` receives the gradient when given.
   */
  lossAndGrads(flat: Float32Array, batch: TokenBatch, into?: Float32Array): LossAndGrads {
    this.checkBatch(batch);
    const { batchSize: B, seqLen: T } = batch;
    const cfg = this.config,
      C = cfg.nEmbd;
    let lossTokens = 0;
    const weights = new Float32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let i = 0; i < B * T; i++) if (batch.targets[i]! >= 0) lossTokens++;
    for (let i = 0; i < B * T; i++) {
      const tg = batch.targets[i]!;
      if (tg >= 0) {
        weights[i] = 1 / lossTokens;
        targets[i] = tg;
      }
    }
    const grads = into ?? new Float32Array(this.layout.size);
    if (grads.length !== this.layout.size) throw new RangeError('gradient buffer has the wrong size');
    if (lossTokens === 0) {
      grads.fill(0);
      return { loss: 0, lossTokens: 0, grads };
    }

    const names = this.layout.slots.map((s) => s.name);
    const native = nativeKernels();
    const out = tf.tidy(() => {
      const p = this.tensors(flat);
      const ids = tf.tensor1d(batch.inputs, 'int32');
      const lossOf = (pm: Params, tokEmb: tf.Tensor): tf.Scalar => {
        const h = trunk(cfg, pm, tokEmb, B, T); // [B*T, C]
        const logits = head(h, param(pm, 'transformer.wte.weight')); // [B*T, V]
        return weightedCrossEntropy(logits, targets, weights);
      };
      const paramsOf = (args: readonly tf.Tensor[]): Params => new Map(names.map((n, i) => [n, args[i]!]));
      if (native) {
        // The lookup is differentiated: its gradient (UnsortedSegmentSum) lands in wte's natively.
        const f = (...args: tf.Tensor[]): tf.Scalar => {
          const pm = paramsOf(args);
          return lossOf(pm, tf.gather(param(pm, 'transformer.wte.weight'), ids));
        };
        const { value, grads: g } = tf.valueAndGrads(f)(names.map((n) => param(p, n)));
        // The loss and every gradient in one tensor (layout order): one device → host copy per step.
        return { value, g: [tf.concat([tf.reshape(value, [1]), ...g.map((t) => tf.reshape(t, [-1]))])] };
      }
      const tokEmb = tf.gather(param(p, 'transformer.wte.weight'), ids); // [B*T, C], not differentiated
      const f = (...args: tf.Tensor[]): tf.Scalar => lossOf(paramsOf(args), args[names.length]!);
      const { value, grads: g } = tf.valueAndGrads(f)([...names.map((n) => param(p, n)), tokEmb]);
      return { value, g };
    });
    try {
      if (native) {
        const packed = out.g[0]!.dataSync() as Float32Array; // [1 + size]: loss, then the flat gradient
        grads.set(packed.subarray(1));
        return { loss: packed[0]!, lossTokens, grads };
      }
      const loss = out.value.dataSync()[0]!;
      this.layout.slots.forEach((s, i) => grads.set(out.g[i]!.dataSync(), s.offset));
      // Scatter-add the embedding-input gradient into wte, after the tied head's contribution, in
      // row order (deterministic). wpe's gradient already came through the differentiated slice.
      const dEmb = out.g[names.length]!.dataSync() as Float32Array; // [B*T, C]
      const wte = this.layout.view(grads, 'transformer.wte.weight');
      for (let r = 0; r < B * T; r++) {
        const row = r * C,
          tok = batch.inputs[r]! * C;
        for (let c = 0; c < C; c++) wte[tok + c] = wte[tok + c]! + dEmb[row + c]!;
      }
      return { loss, lossTokens, grads };
    } finally {
      out.value.dispose();
      for (const t of out.g) t.dispose();
    }
  }

  /** Mean loss over the positions with a target (no gradient), and how many positions had one. */
  loss(flat: Float32Array, batch: TokenBatch): { loss: number; lossTokens: number } {
    this.checkBatch(batch);
    const { batchSize: B, seqLen: T } = batch;
    const targets = new Int32Array(B * T),
      weights = new Float32Array(B * T);
    let lossTokens = 0;
    for (let i = 0; i < B * T; i++)
      if (batch.targets[i]! >= 0) {
        lossTokens++;
        targets[i] = batch.targets[i]!;
        weights[i] = 1;
      }
    if (lossTokens === 0) return { loss: 0, lossTokens: 0 };
    const total = tf.tidy(() => {
      const p = this.tensors(flat);
      const tokEmb = tf.gather(param(p, 'transformer.wte.weight'), tf.tensor1d(batch.inputs, 'int32'));
      const h = trunk(this.config, p, tokEmb, B, T);
      const logits = head(h, param(p, 'transformer.wte.weight'));
      return weightedCrossEntropy(logits, targets, weights);
    });
    const sum = total.dataSync()[0]!;
    total.dispose();
    return { loss: sum / lossTokens, lossTokens };
  }

  /** Logits [B*T, V] of a batch (tests and diagnostics). */
  logits(flat: Float32Array, inputs: Int32Array, batchSize: number, seqLen: number): Float32Array {
    const out = tf.tidy(() => {
      const p = this.tensors(flat);
      const tokEmb = tf.gather(param(p, 'transformer.wte.weight'), tf.tensor1d(inputs, 'int32'));
      const h = trunk(this.config, p, tokEmb, batchSize, seqLen);
      return head(h, param(p, 'transformer.wte.weight'));
    });
    const data = out.dataSync() as Float32Array;
    out.dispose();
    return data;
  }

  /**
   * Next-token logits at one position per row, for greedy generation: inputs [B*T] right-padded,
   * positions[b] = index of row b's last real token. Returns [B, V].
   */
  logitsAt(flat: Float32Array, inputs: Int32Array, batchSize: number, seqLen: number, positions: Int32Array): Float32Array {
    const out = tf.tidy(() => {
      const p = this.tensors(flat);
      const tokEmb = tf.gather(param(p, 'transformer.wte.weight'), tf.tensor1d(inputs, 'int32'));
      const h = trunk(this.config, p, tokEmb, batchSize, seqLen); // [B*T, C]
      const rows = new Int32Array(batchSize);
      for (let b = 0; b < batchSize; b++) rows[b] = b * seqLen + positions[b]!;
      const last = tf.gather<tf.Tensor2D>(h, tf.tensor1d(rows, 'int32')); // [B, C]
      return head(last, param(p, 'transformer.wte.weight')); // [B, V]
    });
    const data = out.dataSync() as Float32Array;
    out.dispose();
    return data;
  }
}

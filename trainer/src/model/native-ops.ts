/**
 * TensorFlow kernels that TensorFlow.js does not expose as ops, called by name through tfjs-node's
 * backend (`executeSingleOutput`/`executeMultipleOutputs`, the same entry its own kernels use). Only
 * for the native backend (docs/native-backend.md, "Model code on the native path"); the results are
 * ordinary engine tensors, so tidy() and dispose() manage them. Used inside customGrad forward and
 * gradient functions only: the autodiff tape does not see raw kernels.
 */
import * as tf from '@tensorflow/tfjs-core';

/** An attribute of a TensorFlow op as tfjs-node's binding takes it (type: TF_ATTR_* code). */
interface OpAttr {
  readonly name: string;
  readonly type: number;
  readonly value: number | boolean | string;
}

/** The part of tfjs-node's NodeJSKernelBackend used here. */
interface NativeBackend {
  readonly isUsingGpuDevice: boolean;
  readonly binding: { readonly TF_ATTR_TYPE: number; readonly TF_FLOAT: number; readonly TF_INT32: number };
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
    typeof binding['TF_FLOAT'] === 'number' &&
    typeof binding['TF_INT32'] === 'number'
  );
}

function nativeBackend(): NativeBackend {
  const b = tf.backend();
  if (!isNativeBackend(b)) throw new Error(`native TensorFlow kernels requested on the ${tf.getBackend()} backend`);
  return b;
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

/** No tensor leak: tf.memory().numTensors is the same before and after 100 training steps. */
import test from 'ava';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../../trainer/src/backend.js';
import { TrainerConfigSchema } from '../../../contract/config.js';
import { MODEL_PRESETS } from '../../../trainer/src/model/config.js';
import { Gpt2Model } from '../../../trainer/src/model/gpt2.js';
import { initParams } from '../../../trainer/src/model/init.js';
import { createOptimizerState } from '../../../trainer/src/optim/optimizer.js';
import { optimizerParams, scheduleParams } from '../../../trainer/src/update/method.js';
import { Updater } from '../../../trainer/src/update/updater.js';

test('leak - 100 training steps, evaluation and generation leave tf.memory().numTensors unchanged', async (t) => {
  await initBackend('wasm');
  const cfg = { ...MODEL_PRESETS.micro, nPositions: 16 };
  const model = new Gpt2Model(cfg);
  const params = initParams(model.layout, 3);
  const c = TrainerConfigSchema.parse({ method: 'gmt', steps: 100 });
  const updater = new Updater(model.layout, c, optimizerParams(c), scheduleParams(c));
  const state = createOptimizerState('adamw', params.length);
  const B = 2,
    T = 16;
  const inputs = new Int32Array(B * T).map((_, i) => (i * 31) % 258),
    targets = new Int32Array(B * T).map((_, i) => (i % 5 === 0 ? -1 : (i * 17) % 258));
  const batch = { inputs, targets, batchSize: B, seqLen: T };
  const warm = model.lossAndGrads(params, batch);
  updater.update(0, params, warm.grads, state);
  const start = tf.memory().numTensors;
  for (let step = 1; step <= 100; step++) {
    const { grads } = model.lossAndGrads(params, batch);
    updater.update(step, params, grads, state);
    if (step % 25 === 0) {
      model.loss(params, batch);
      model.logitsAt(params, inputs, B, T, new Int32Array([3, 7]));
      t.is(tf.memory().numTensors, start, `after step ${step}`);
    }
  }
  t.is(tf.memory().numTensors, start);
});

/**
 * Backend selection and its configuration: the thread default, `auto`'s choice and reason, and the
 * threads/deterministic keys from flags and environment.
 */
import test from 'ava';
import { availableParallelism } from 'node:os';
import { defaultThreads, gpuVisible, initBackend, nativeBuilt } from '../../../trainer/src/backend.js';
import { loadConfig } from '../../../trainer/src/config/load.js';

test('backend - the default thread count is between 1 and the cores this process may use', (t) => {
  const n = defaultThreads();
  t.true(Number.isInteger(n) && n >= 1 && n <= availableParallelism(), `${n}`);
});

test('backend - auto picks native TensorFlow once setup:native has built it, else wasm, and says why', async (t) => {
  const b = await initBackend('auto', { threads: 1 });
  t.log(`${b.label} (${b.provider}, ${b.threads} thread(s)): ${b.reason}`);
  if (nativeBuilt()) {
    t.is(b.name, 'tensorflow');
    t.is(b.label, gpuVisible() ? 'tensorflow/gpu' : 'tensorflow/cpu');
    t.is(b.threads, Number(process.env['TF_NUM_INTRAOP_THREADS']));
    t.regex(b.reason, /native/);
  } else {
    t.is(b.name, 'wasm');
    t.regex(b.reason, /setup:native/);
  }
});

test('backend - threads and deterministic come from flags and GMT_THREADS', async (t) => {
  // loadConfig takes the flags as the command-line parser hands them over (camelCase → text).
  const config = await loadConfig({ threads: '3', deterministic: 'false' }, undefined, {});
  t.like(config, { threads: 3, deterministic: false });
  const fromEnv = await loadConfig({}, undefined, { GMT_THREADS: '4' });
  t.like(fromEnv, { threads: 4, deterministic: true });
  t.is((await loadConfig({}, undefined, {})).threads, 0);
});

/**
 * The native backend's pins and its GPU check: every pinned wheel is an exact, checksummed file of
 * the version it claims; the cache key changes with every version that changes the build; and
 * `check:gpu` fails with one clear line where no GPU device exists (it must never pass without one).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { NAPI_VERSION, TF_VERSION, nativeKey, wheelsFor } from '../../trainer/src/native/spec.js';
import { repoPath } from '../helpers/repo.js';

for (const variant of ['cpu', 'gpu'] as const) {
  test(`native - every pinned ${variant} wheel names its exact version, a manylinux x86-64 file and a sha256`, (t) => {
    const wheels = wheelsFor(variant);
    t.true(wheels.length > 0);
    t.true(wheels.some((w) => w.requirement === `${variant === 'cpu' ? 'tensorflow-cpu' : 'tensorflow'}==${TF_VERSION}`));
    for (const w of wheels) {
      const m = /^([a-z0-9-]+)==([0-9.]+)$/.exec(w.requirement);
      t.truthy(m, w.requirement);
      const [, name = '', version = ''] = m ?? [];
      t.true(w.file.startsWith(`${name.replace(/-/g, '_')}-${version}-`), `${w.file} is not ${w.requirement}`);
      t.regex(w.file, /manylinux[0-9_]*x86_64.*\.whl$/);
      t.regex(w.sha256, /^[0-9a-f]{64}$/);
      t.true(w.bytes > 1_000_000, `${w.file}: ${w.bytes} bytes`);
    }
    t.is(new Set(wheels.map((w) => w.file)).size, wheels.length, 'a wheel is pinned twice');
  });
}

test('native - the cache key names the variant and the TensorFlow, tfjs and N-API versions', (t) => {
  t.is(nativeKey('cpu', '4.22.0'), `cpu-tf${TF_VERSION}-tfjs4.22.0-napi${String(NAPI_VERSION)}-linux-x64`);
  t.not(nativeKey('gpu', '4.22.0'), nativeKey('cpu', '4.22.0'));
  t.not(nativeKey('cpu', '4.23.0'), nativeKey('cpu', '4.22.0'));
});

test('native - check:gpu fails with one clear line and exit 1 when no GPU device is visible', (t) => {
  const r = spawnSync(process.execPath, [repoPath('dist', 'scripts', 'check-gpu.js')], {
    encoding: 'utf8',
    env: { ...process.env, GMT_GPU_DEVICES: '/nonexistent/nvidiactl,/nonexistent/nvidia0' },
    timeout: 60_000,
  });
  t.is(r.status, 1);
  t.is(r.stdout, '');
  t.is(r.stderr.trim().split('\n').length, 1);
  t.regex(r.stderr, /^check:gpu: FAILED: no NVIDIA GPU visible \(\/nonexistent\/nvidiactl, \/nonexistent\/nvidia0 missing\); nothing was checked/);
});

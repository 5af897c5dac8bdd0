/**
 * The native TensorFlow backend, built from registry packages only: what is pinned, where it is
 * cached and how it is laid out. Shared by the setup step (scripts/setup-native.ts) and the trainer's
 * backend selection (which says what to run when the backend is missing).
 *
 * @tensorflow/tfjs-node(-gpu) ships its N-API binding's C++ sources; its install script would download
 * libtensorflow and a prebuilt addon from a Google storage host, which build machines of this project
 * cannot reach. Instead the setup step takes the TensorFlow C API (libtensorflow_cc.so.2 +
 * libtensorflow_framework.so.2, which together export every TF_ and TFE_ function the binding uses)
 * and its headers from the PyPI wheels below, and compiles the binding with npm's node-gyp.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** A wheel fetched from PyPI with pip, checked against its sha256. */
export interface PinnedWheel {
  /** Distribution name and exact version, as pip spells it in a requirement. */
  readonly requirement: string;
  /** The wheel's file name (platform tag included): exactly this file is accepted. */
  readonly file: string;
  readonly sha256: string;
  /** Size in bytes (for the "what it fetches" message). */
  readonly bytes: number;
}

/** CPU or GPU build of the backend. */
export type NativeVariant = 'cpu' | 'gpu';

/** TensorFlow version of the wheels; the C API of 2.21 is what the binding was compiled against here. */
export const TF_VERSION = '2.21.0';

/**
 * pip's target for the wheels. The C libraries do not link libpython, so the cp tag does not
 * matter; the platform tag does (glibc ≥ 2.27, x86-64).
 */
export const WHEEL_PLATFORM = {
  python: '3.11',
  platforms: ['manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux_2_12_x86_64', 'manylinux2010_x86_64'],
} as const;

/** CPU: tensorflow-cpu only (its two shared libraries and C headers). */
const CPU_WHEELS: readonly PinnedWheel[] = [
  {
    requirement: `tensorflow-cpu==${TF_VERSION}`,
    file: `tensorflow_cpu-${TF_VERSION}-cp311-cp311-manylinux_2_27_x86_64.whl`,
    sha256: '2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c',
    bytes: 273_829_956,
  },
];

/**
 * GPU: tensorflow (CUDA-enabled libraries) plus the CUDA 12 runtime libraries of its `and-cuda`
 * extra, each pinned to the version pip resolved for that extra's ranges (tensorflow 2.21.0 METADATA).
 * TensorFlow finds them through its RUNPATH `$ORIGIN/../nvidia/<lib>/lib`, so the setup unpacks them
 * next to the TF libraries; only the driver (libcuda.so.1) comes from the node.
 */
const GPU_WHEELS: readonly PinnedWheel[] = [
  {
    requirement: `tensorflow==${TF_VERSION}`,
    file: `tensorflow-${TF_VERSION}-cp311-cp311-manylinux_2_27_x86_64.whl`,
    sha256: '9056fbc9ba04235810b71ae6cbd958a196e8804fb53bbcffbf3e23b56155f124',
    bytes: 572_440_367,
  },
  {
    requirement: 'nvidia-cublas-cu12==12.9.3.13',
    file: 'nvidia_cublas_cu12-12.9.3.13-py3-none-manylinux_2_27_x86_64.whl',
    sha256: 'd7d51055f161b317c7105ddaae90e71eda059026074ffef93cf7cde2886bfe72',
    bytes: 581_217_458,
  },
  {
    requirement: 'nvidia-cuda-cupti-cu12==12.8.90',
    file: 'nvidia_cuda_cupti_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl',
    sha256: 'ea0cb07ebda26bb9b29ba82cda34849e73c166c18162d3913575b0c9db9a6182',
    bytes: 10_248_621,
  },
  {
    requirement: 'nvidia-cuda-nvcc-cu12==12.9.86',
    file: 'nvidia_cuda_nvcc_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl',
    sha256: '5d6a0d32fdc7ea39917c20065614ae93add6f577d840233237ff08e9a38f58f0',
    bytes: 40_546_229,
  },
  {
    requirement: 'nvidia-cuda-nvrtc-cu12==12.9.86',
    file: 'nvidia_cuda_nvrtc_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl',
    sha256: '210cf05005a447e29214e9ce50851e83fc5f4358df8b453155d5e1918094dcb4',
    bytes: 89_568_129,
  },
  {
    requirement: 'nvidia-cuda-runtime-cu12==12.9.79',
    file: 'nvidia_cuda_runtime_cu12-12.9.79-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl',
    sha256: '25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3',
    bytes: 3_493_179,
  },
  {
    requirement: 'nvidia-cudnn-cu12==9.28.0.42',
    file: 'nvidia_cudnn_cu12-9.28.0.42-py3-none-manylinux_2_27_x86_64.whl',
    sha256: '9ff58b7f36dacd0a93e89f8f2957b52466889217963701daa15e577317cfa375',
    bytes: 716_538_495,
  },
  {
    requirement: 'nvidia-cufft-cu12==11.4.1.4',
    file: 'nvidia_cufft_cu12-11.4.1.4-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl',
    sha256: 'c67884f2a7d276b4b80eb56a79322a95df592ae5e765cf1243693365ccab4e28',
    bytes: 200_877_592,
  },
  {
    requirement: 'nvidia-curand-cu12==10.3.10.19',
    file: 'nvidia_curand_cu12-10.3.10.19-py3-none-manylinux_2_27_x86_64.whl',
    sha256: '49b274db4780d421bd2ccd362e1415c13887c53c214f0d4b761752b8f9f6aa1e',
    bytes: 68_295_626,
  },
  {
    requirement: 'nvidia-cusolver-cu12==11.7.5.82',
    file: 'nvidia_cusolver_cu12-11.7.5.82-py3-none-manylinux_2_27_x86_64.whl',
    sha256: '15da72d1340d29b5b3cf3fd100e3cd53421dde36002eda6ed93811af63c40d88',
    bytes: 338_117_415,
  },
  {
    requirement: 'nvidia-cusparse-cu12==12.5.10.65',
    file: 'nvidia_cusparse_cu12-12.5.10.65-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl',
    sha256: '73060ce019ac064a057267c585bf1fd5a353734151f87472ff02b2c5c9984e78',
    bytes: 366_465_088,
  },
  {
    requirement: 'nvidia-nccl-cu12==2.32.3',
    file: 'nvidia_nccl_cu12-2.32.3-py3-none-manylinux_2_27_x86_64.whl',
    sha256: 'bb94b2348e4861d5e8aa00b36c3d12d9bdf9c6369b82cbb723de0b582280a21c',
    bytes: 351_526_311,
  },
  {
    requirement: 'nvidia-nvjitlink-cu12==12.9.86',
    file: 'nvidia_nvjitlink_cu12-12.9.86-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl',
    sha256: 'e3f1171dbdc83c5932a45f0f4c99180a70de9bd2718c1ab77d14104f6d7147f9',
    bytes: 39_748_338,
  },
];

/** The pinned wheels of a variant. */
export function wheelsFor(variant: NativeVariant): readonly PinnedWheel[] {
  return variant === 'cpu' ? CPU_WHEELS : GPU_WHEELS;
}

/** The tfjs package whose binding a variant builds. */
export function tfjsPackageFor(variant: NativeVariant): '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu' {
  return variant === 'cpu' ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-node-gpu';
}

/** N-API version the binding is built for (tfjs-node lists 3..8; Node ≥ 15 supports 8). */
export const NAPI_VERSION = 8;

/** Cache root, shared with the test binaries: `${GMT_CACHE_DIR:-~/.cache/gmt-operator}`. */
export function cacheRoot(): string {
  return process.env['GMT_CACHE_DIR'] ?? join(homedir(), '.cache', 'gmt-operator');
}

/** The cache key of a build: everything that changes the built files. */
export function nativeKey(variant: NativeVariant, tfjsVersion: string): string {
  return `${variant}-tf${TF_VERSION}-tfjs${tfjsVersion}-napi${NAPI_VERSION}-linux-x64`;
}

/** Where a build is cached: `<cache>/tfjs-native/<key>/` holding deps/{include,lib}, lib/napi-v8/, manifest.json. */
export function nativeCacheDir(variant: NativeVariant, tfjsVersion: string): string {
  return join(cacheRoot(), 'tfjs-native', nativeKey(variant, tfjsVersion));
}

/** The binding's path relative to the package folder (node-pre-gyp's `module_path`). */
export const BINDING_RELPATH = join('lib', `napi-v${NAPI_VERSION}`, 'tfjs_binding.node');

/** GMT's fused CPU kernels (trainer/native/gmt_ops.cc), compiled by setup:native next to the binding. */
export const FUSED_OPS_RELPATH = join('lib', 'gmt-ops', 'gmt_ops.node');

/** The op library's source, relative to the repository root (also copied into the image build). */
export const FUSED_OPS_SOURCE = join('trainer', 'native', 'gmt_ops.cc');

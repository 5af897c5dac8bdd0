# gmt-trainer image, GPU: native TensorFlow with CUDA (tfjs-node-gpu). Build from the repository root
# after `npm run build`:
#   docker build -f images/trainer-gpu.Dockerfile -t gmt-trainer:0.1.0-gpu .
# (locally, without Docker: `npm run images -- --gpu`, which builds it with buildah.)
# Same recipe as images/trainer.Dockerfile and `npm run setup:native -- --gpu`: the pinned `tensorflow`
# wheel (CUDA-enabled libraries) and the CUDA 12 runtime wheels of its `and-cuda` extra (cuBLAS, cuDNN,
# cuFFT, cuSPARSE, cuSOLVER, cuRAND, NCCL, nvJitLink, NVRTC, CUPTI, CUDA runtime, nvcc's ptxas), all from
# PyPI with sha256 checks. TensorFlow finds them through its RUNPATH ($ORIGIN/../nvidia/*/lib), so no
# CUDA base image is needed: only the NVIDIA driver (libcuda.so.1), which the NVIDIA container toolkit
# mounts from the node. Needs a driver for CUDA 12 (>= 525) and the device plugin (nvidia.com/gpu).
# Without a GPU the same image runs TensorFlow's CPU kernels (`--backend auto` says so).

# BASE: Node 24.21 on Debian bookworm with npm and Node's headers (the tests pass one made locally).
ARG BASE=node:24.21.0-bookworm-slim

# ---- build stage: compile the binding and the fused kernels (needs python3 + pip for the wheels and
# gyp, g++, make, strip)
FROM ${BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip g++ make binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: tfjs-node-gpu's install script would download from a host we do not use.
# Behind a TLS-intercepting proxy, hand its CA in for the two registry steps only (npm, then pip):
#   docker build --secret id=npm_ca,src=/path/to/ca.pem …   (never stored in the image)
RUN --mount=type=secret,id=npm_ca,required=false \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY dist/ ./dist/
# The fused CPU kernels' source: setup-native compiles it with g++ next to the binding (lib/gmt-ops/).
COPY trainer/native/ ./trainer/native/
# --gpu --copy: the libraries (TensorFlow and the CUDA wheels' nvidia/*/lib) go into
# node_modules/@tensorflow/tfjs-node-gpu (no links into the cache).
RUN --mount=type=secret,id=npm_ca,required=false \
    if [ -s /run/secrets/npm_ca ]; then export PIP_CERT=/run/secrets/npm_ca; fi; \
    node dist/scripts/setup-native.js --gpu --copy && rm -rf /root/.cache

# ---- runtime: Node 24 on Debian slim; the driver comes from the node
FROM ${BASE}
# NVIDIA container toolkit: expose the GPUs and mount the driver's compute libraries.
ENV NODE_ENV=production TF_CPP_MIN_LOG_LEVEL=2 NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
# dist/ from the build context, as the build stage had it (the binding lives in node_modules).
COPY dist/contract ./dist/contract
COPY dist/trainer ./dist/trainer
# The bundled base model (--base-model bundled, the default) is read from trainer/assets/.
COPY trainer/assets ./trainer/assets
# The `node` user of the base image (uid 1000).
USER 1000:1000
EXPOSE 9400
ENTRYPOINT ["node", "/app/dist/trainer/src/main.js"]

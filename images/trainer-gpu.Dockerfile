# gmt-trainer image, GPU: native TensorFlow with CUDA (tfjs-node-gpu). Build from the repository root
# after `npm run build`:
#   docker build -f images/trainer-gpu.Dockerfile -t gmt-trainer:0.1.0-gpu .
# Same recipe as images/trainer.Dockerfile and `npm run setup:native -- --gpu`: the pinned `tensorflow`
# wheel (CUDA-enabled libraries) and the CUDA 12 runtime wheels of its `and-cuda` extra (cuBLAS, cuDNN,
# cuFFT, cuSPARSE, cuSOLVER, cuRAND, NCCL, nvJitLink, NVRTC, CUPTI, CUDA runtime, nvcc's ptxas), all from
# PyPI with sha256 checks. TensorFlow finds them through its RUNPATH ($ORIGIN/../nvidia/*/lib), so no
# CUDA base image is needed: only the NVIDIA driver (libcuda.so.1), which the NVIDIA container toolkit
# mounts from the node. Needs a driver for CUDA 12 (>= 525) and the device plugin (nvidia.com/gpu).
# About 3.4 GB of wheels are fetched; the image holds ~4 GB of libraries.

FROM node:24.21.0-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip g++ make binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY dist/ ./dist/
RUN node dist/scripts/setup-native.js --gpu --copy && rm -rf /root/.cache

FROM node:24.21.0-bookworm-slim
# NVIDIA container toolkit: expose the GPUs and mount the driver's compute libraries.
ENV NODE_ENV=production TF_CPP_MIN_LOG_LEVEL=2 NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
# dist/ from the build context, as the build stage had it (the binding lives in node_modules).
COPY dist/contract ./dist/contract
COPY dist/trainer ./dist/trainer
COPY trainer/assets ./trainer/assets
USER 1000:1000
EXPOSE 9400
ENTRYPOINT ["node", "/app/dist/trainer/src/main.js"]

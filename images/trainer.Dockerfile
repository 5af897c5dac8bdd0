# gmt-trainer image with the GPU backend. Build from the repository root after `npm run build`:
#   docker build -f images/trainer.Dockerfile -t gmt-trainer:0.1.0 .
#
# @tensorflow/tfjs-node-gpu 4.22 links libtensorflow 2.9.1, which needs CUDA 11.2 and cuDNN 8.1
# (https://www.tensorflow.org/install/source#gpu). Hence the CUDA 11.2 / cuDNN 8 runtime base;
# newer CUDA majors do not load it. The node needs an NVIDIA driver >= 460 (CUDA 11.2).
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

ARG NODE_VERSION=24.11.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl xz-utils python3 make g++ \
 && curl -fsSL "https://nodejs.org/dist/v${NODE_VERSION}/node-v${NODE_VERSION}-linux-x64.tar.xz" \
    | tar -xJ -C /usr/local --strip-components=1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
# Installs the optional @tensorflow/tfjs-node-gpu (its install script downloads libtensorflow-gpu
# 2.9.1 and builds the binding), then drops the build toolchain.
RUN npm ci --omit=dev && npm cache clean --force \
 && apt-get purge -y --auto-remove make g++ && rm -rf /var/lib/apt/lists/*
COPY dist/contract ./dist/contract
COPY dist/trainer ./dist/trainer
# The bundled base model (baseModel "bundled", the default).
COPY trainer/assets ./trainer/assets

RUN groupadd --gid 1000 gmt && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin gmt
USER 1000:1000
ENV NODE_ENV=production TF_CPP_MIN_LOG_LEVEL=2
EXPOSE 9400
ENTRYPOINT ["node", "/app/dist/trainer/src/main.js"]

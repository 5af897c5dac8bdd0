# gmt-trainer image, CPU: native TensorFlow (tfjs-node) on a small Debian base, for the many clusters
# without GPUs. Build from the repository root after `npm run build`:
#   docker build -f images/trainer.Dockerfile -t gmt-trainer:0.1.0 .
# The GPU image is images/trainer-gpu.Dockerfile. Both install the native backend exactly as
# `npm run setup:native` does on a workstation (docs/native-backend.md): the pinned tensorflow-cpu wheel
# from PyPI (sha256-checked), its C API libraries and headers, and tfjs-node's N-API binding compiled
# with npm's node-gyp against them. Registry access only (npm, PyPI, Debian); no other download host.

# BASE: Node 24.21 on Debian bookworm with npm and Node's headers (the tests pass one made locally).
ARG BASE=node:24.21.0-bookworm-slim

# ---- build stage: compile the binding and the fused kernels (needs python3 + pip for the wheel and gyp,
# g++, make, strip)
FROM ${BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip g++ make binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: tfjs-node's install script would download from a host we do not use (npm 11 skips it
# anyway through package.json "allowScripts"; older npm would not).
# Behind a TLS-intercepting proxy, hand its CA in for the two registry steps only (npm, then pip):
#   docker build --secret id=npm_ca,src=/path/to/ca.pem …   (never stored in the image)
RUN --mount=type=secret,id=npm_ca,required=false \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY dist/ ./dist/
# The fused CPU kernels' source: setup-native compiles it with g++ next to the binding (lib/gmt-ops/).
COPY trainer/native/ ./trainer/native/
# --copy: the libraries go into node_modules/@tensorflow/tfjs-node/{deps,lib} (no links into the cache).
# The Node headers come from this image's own Node (/usr/local/include/node).
RUN --mount=type=secret,id=npm_ca,required=false \
    if [ -s /run/secrets/npm_ca ]; then export PIP_CERT=/run/secrets/npm_ca; fi; \
    node dist/scripts/setup-native.js --copy && rm -rf /root/.cache

# ---- runtime: Node 24 on Debian slim (libstdc++ is there for the TensorFlow libraries)
FROM ${BASE}
ENV NODE_ENV=production TF_CPP_MIN_LOG_LEVEL=2
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

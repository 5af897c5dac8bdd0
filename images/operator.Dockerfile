# gmt-operator image. Build from the repository root after `npm run build`:
#   docker build -f images/operator.Dockerfile -t gmt-operator:0.1.0 .
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional: nothing optional is needed; the tfjs-node(-gpu) packages stay without their native binding
# (only the trainer images build it, with setup-native).
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
# The operator imports only contract/ (the trainer↔operator contract), never trainer/.
COPY dist/contract ./dist/contract
COPY dist/operator ./dist/operator
# The `node` user of the base image (uid 1000); the chart also sets runAsNonRoot and a read-only root.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "/app/dist/operator/src/main.js"]

# Graft worker on CPU: TensorFlow.js with the native tfjs-node backend (falls back to wasm).
FROM node:20-bookworm-slim
ENV NODE_ENV=production ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc tsconfig.base.json ./
COPY packages ./packages
COPY services ./services
COPY scripts ./scripts
RUN npm ci --omit=dev && npm install --no-save @tensorflow/tfjs-node@4.22.0 && npm cache clean --force
USER node
CMD ["npm", "run", "worker"]

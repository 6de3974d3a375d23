# Graft worker on NVIDIA GPUs. The backend chooser takes tfjs-node-gpu where it loads (libtensorflow 2.x needs CUDA
# 11.x + cuDNN 8), else WebGPU (Dawn over Vulkan, the path that runs on current drivers), else the CPU, and logs why
# it passed over each one; GRAFT_TF_BACKEND is left unset so that it can fall back.
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
ENV NODE_ENV=production DEBIAN_FRONTEND=noninteractive
# libvulkan1 and the 'graphics' driver capability let the WebGPU backend (Dawn over Vulkan) reach the driver.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates python3 make g++ libvulkan1 \
 && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
 && apt-get install -y --no-install-recommends nodejs && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.base.json ./
COPY packages ./packages
COPY services ./services
COPY scripts ./scripts
# onnxruntime-node fetches its CUDA provider here (this image has network at build time).
RUN npm ci --omit=dev && npm install --no-save @tensorflow/tfjs-node-gpu@4.22.0 && npm cache clean --force
CMD ["npm", "run", "worker"]

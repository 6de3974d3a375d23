# Graft worker on NVIDIA GPUs. The backend chooser takes tfjs-node-gpu where it loads (libtensorflow 2.x needs CUDA
# 11.x + cuDNN 8), else WebGPU (Dawn over Vulkan, the path that runs on current drivers), else the CPU, and logs why
# it passed over each one; GRAFT_TF_BACKEND is left unset so that it can fall back (set it to webgpu to insist:
# the worker then fails at start, naming why, where WebGPU cannot start). On a GPU backend the frozen base runs on
# TensorFlow.js there too; ONNX Runtime on the CPU is the fallback's frozen engine.
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
# Both GPU backends are there: WebGPU (Dawn's Linux build and TensorFlow.js's webgpu backend) and tfjs-node-gpu.
RUN node -e "for (const p of ['webgpu', '@tensorflow/tfjs-backend-webgpu', '@tensorflow/tfjs-node-gpu']) require.resolve(p + '/package.json')" \
 && test -f node_modules/webgpu/dist/linux-x64/dawn.node
CMD ["npm", "run", "worker"]

# PyTorch side of bench/train-speed.ts: the same two training phases on the same shapes, on cached activations.
#   fine-tune: MobileNet v1 0.75's top block (depthwise 3x3 + frozen batch norm + ReLU6, pointwise 1x1 + frozen
#              batch norm + ReLU6) with the head (global average pooling, Dense 256 ReLU, dropout 0.5, Dense 1
#              sigmoid), RMSprop, on lower-part outputs [n, size/32, size/32, 768];
#   head:      the head alone on pooled vectors [n, 768].
# Prints one JSON line: {"torch": version, "threads": t, "fineTune": images/s, "fineTuneCpu": images per second of
# this process's CPU time, "head": samples/s}.
#   /usr/bin/python3 bench/train_speed_torch.py [--size 288] [--batch 32] [--threads 2] [--head-samples 0: no head phase]
import argparse
import json
import time

import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument('--size', type=int, default=288)
p.add_argument('--batch', type=int, default=32)
p.add_argument('--head-batch', type=int, default=32)
p.add_argument('--threads', type=int, default=2)
p.add_argument('--fine-tune-samples', type=int, default=512)
p.add_argument('--head-samples', type=int, default=8192)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)
C = 768
S = a.size // 32


def head():
    return nn.Sequential(nn.Linear(C, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 1))


def frozen_bn():
    bn = nn.BatchNorm2d(C)
    bn.eval()
    for w in bn.parameters():
        w.requires_grad_(False)
    return bn


block = nn.Sequential(
    nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False), frozen_bn(), nn.ReLU6(),
    nn.Conv2d(C, C, 1, bias=False), frozen_bn(), nn.ReLU6(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), head(),
)


def epoch_rate(model, x, y, batch, epochs=2):
    """Samples per second of training epochs over cached x (one epoch of warm-up first)."""
    params = [w for w in model.parameters() if w.requires_grad]
    opt = torch.optim.RMSprop(params, lr=1e-5, alpha=0.9, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    n = x.shape[0]

    def one_epoch():
        order = torch.randperm(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    one_epoch()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(epochs):
        one_epoch()
    return epochs * n / (time.perf_counter() - t0), epochs * n / (time.process_time() - c0)


x = torch.rand(a.fine_tune_samples, C, S, S) * 3
y = (torch.arange(a.fine_tune_samples) % 2).float().unsqueeze(1)
fine_tune, fine_tune_cpu = epoch_rate(block, x, y, a.batch)
head_rate = None
if a.head_samples > 0:
    xh = torch.rand(a.head_samples, C) * 3
    yh = (torch.arange(a.head_samples) % 2).float().unsqueeze(1)
    head_rate = round(epoch_rate(head(), xh, yh, a.head_batch)[0], 1)
print(json.dumps({'torch': torch.__version__, 'threads': a.threads, 'fineTune': round(fine_tune, 1), 'fineTuneCpu': round(fine_tune_cpu, 1), 'head': head_rate}))

# The PyTorch peer of bench/predict.ts and bench/extract.ts: MobileNet v1 0.75 at 224x224 (the network Graft's
# default recipe serves), CPU, the same thread count, in fp32 and in int8 (FX static quantization, per-channel
# weights, calibrated on random inputs: speed does not depend on the values), and one Grad-CAM (forward, then the
# gradient of the class score with respect to the last feature map) as POST /explain computes it.
# Weights are random: only speed is measured. Prints a markdown table; note the load average it prints too.
#
#   /usr/bin/python3 bench/torch_peer.py [--threads 2] [--seconds 5]
import argparse
import os
import time

import torch
import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument('--threads', type=int, default=os.cpu_count())
parser.add_argument('--seconds', type=float, default=5.0)
args = parser.parse_args()
torch.set_num_threads(args.threads)


def block(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(),
    )


class MobileNetV1(nn.Module):
    def __init__(self, alpha=0.75, classes=1):
        super().__init__()
        c = lambda n: int(n * alpha)
        cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
        layers = [nn.Sequential(nn.Conv2d(3, c(32), 3, 2, 1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU6())]
        cin = c(32)
        for cout, s in cfg:
            layers.append(block(cin, c(cout), s))
            cin = c(cout)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.head(nn.functional.adaptive_avg_pool2d(self.features(x), 1))


def rate(fn, batch):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - t0)


def p50(fn, runs=40):
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return sorted(ts)[len(ts) // 2]


model = MobileNetV1().eval()
rows = []
with torch.no_grad():
    for b in (1, 8, 32):
        x = torch.rand(b, 3, 224, 224)
        rows.append(('fp32', b, rate(lambda: model(x), b), p50(lambda: model(x)) if b == 1 else None))

try:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = 'onednn' if 'onednn' in torch.backends.quantized.supported_engines else 'qnnpack'
    example = torch.rand(8, 3, 224, 224)
    prepared = prepare_fx(model, get_default_qconfig_mapping(torch.backends.quantized.engine), example_inputs=(example,))
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.rand(8, 3, 224, 224))
    qmodel = convert_fx(prepared)
    with torch.no_grad():
        for b in (1, 8, 32):
            x = torch.rand(b, 3, 224, 224)
            rows.append((f'int8 ({torch.backends.quantized.engine})', b, rate(lambda: qmodel(x), b), p50(lambda: qmodel(x)) if b == 1 else None))
except Exception as err:  # noqa: BLE001 - a build without quantized kernels still reports fp32
    print(f'int8: not measured ({err})')


def gradcam():
    x = torch.rand(1, 3, 224, 224)
    fmap = model.features(x).detach().requires_grad_(True)
    score = torch.log(torch.sigmoid(model.head(nn.functional.adaptive_avg_pool2d(fmap, 1))).clamp_min(1e-7)).sum()
    (grad,) = torch.autograd.grad(score, fmap)
    cam = torch.relu((fmap * grad.mean((2, 3), keepdim=True)).sum(1))
    return cam / cam.max().clamp_min(1e-12)


print(f'# PyTorch {torch.__version__} peer, {args.threads} threads, load average {" ".join(f"{l:.1f}" for l in os.getloadavg())}')
print('\n| PyTorch | batch | images/s | p50 ms (batch 1) |\n| --- | --- | --- | --- |')
for name, b, ips, ms in rows:
    print(f'| {name} | {b} | {ips:.1f} | {"" if ms is None else f"{ms:.1f}"} |')
print(f'\nGrad-CAM of one image (forward + gradient to the last feature map, no decode or PNG): p50 {p50(gradcam, 20):.1f} ms')

"""PyTorch modules with the state-dict names and layouts of simclr's checkpoints.

    from simclr_torch import load
    net = load("runs/.../model.safetensors")      # strict load_state_dict; eval mode
    h = net.encoder(x)                              # x: [n, channels, size, size] in [-1, 1]

simclr's views are `2 * pixel / 255 - 1`; evaluation views are the whole image resized bilinearly
(`F.interpolate(..., mode="bilinear", align_corners=False)`).

Run as a script to check a run against its embeddings:
    python simclr_torch.py RUN_DIR EMBED_DIR     # EMBED_DIR from `simclr embed RUN_DIR --out EMBED_DIR`
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, bias):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + skip)


class TutorialEncoder(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.res1, self.res2 = BasicBlock(64, 64, 1, True), BasicBlock(64, 64, 1, True)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return torch.flatten(self.res2(self.res1(x)), 1)


class ResNet18(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        cin, layers = 64, []
        for i, cout in enumerate([64, 128, 256, 512]):
            blocks = [BasicBlock(cin, cout, 2 if i > 0 else 1, False), BasicBlock(cout, cout, 1, False)]
            layers.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def head(in_dim, widths, batch_norm):
    layers = []
    for i, w in enumerate(widths):
        last = i + 1 == len(widths)
        bn = batch_norm and not last
        layers.append(nn.Linear(in_dim, w, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm1d(w))
        if not last:
            layers.append(nn.ReLU())
        in_dim = w
    return nn.Sequential(*layers)


class SimCLRNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        c, s = spec["channels"], spec["size"]
        if spec["architecture"] == "tutorial":
            self.encoder, dim = TutorialEncoder(c), 64 * (s // 4) ** 2
        else:
            self.encoder, dim = ResNet18(c), 512
        self.head = head(dim, spec["head_widths"], spec["head_batch_norm"])

    def forward(self, x):
        return self.head(self.encoder(x))


def load(path):
    """Builds the network a simclr checkpoint describes and loads it strictly, in eval mode."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        spec = json.loads(f.metadata()["simclr.net"])
    net = SimCLRNet(spec)
    net.load_state_dict(load_file(path), strict=True)
    return net.eval()


def _check(run_dir, embed_dir):
    """Loads the run's checkpoint and compares PyTorch's h of the Fashion-MNIST test images
    (from Debian's dataset-fashion-mnist) with the h.npy that `simclr embed` wrote."""
    import gzip

    import numpy as np

    net = load(f"{run_dir}/model.safetensors")
    h_rust = np.load(f"{embed_dir}/h.npy")
    raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
    images = np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28)[: h_rust.shape[0]]
    x = torch.tensor(images, dtype=torch.float32) * (2 / 255) - 1
    side = int(round((h_rust.shape[1] / 64) ** 0.5)) * 4  # the tutorial encoder: h = 64 (side/4)^2
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    with torch.no_grad():
        h = net.encoder(x).numpy()
    err = np.abs(h - h_rust).max() / np.abs(h_rust).max()
    print(json.dumps({"strict_load": True, "rows": int(h.shape[0]), "max_relative_difference": float(err)}))
    assert err < 1e-4, err


if __name__ == "__main__":
    _check(sys.argv[1], sys.argv[2])

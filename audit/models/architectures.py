"""Trainable architectures for small images, in a registry with one factory.

`create_architecture(name, in_channels=..., n_classes=..., **kwargs)` and
`list_architectures()` are the only ways in; an unknown name lists what exists.
Models only: no training, no data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_architecture(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_architectures() -> list[str]:
    return sorted(_REGISTRY)


def create_architecture(name: str, *, in_channels: int, n_classes: int, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(list_architectures())}")
    return _REGISTRY[name](in_channels=in_channels, n_classes=n_classes, **kwargs)


def state_dict_hash(model: nn.Module) -> str:
    """SHA-256 over the names and bytes of a model's state dict (the models table's weights hash)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_architecture(name: str, kwargs: dict) -> None:
    """Raise ValueError when `name` is unknown or `kwargs` are not its factory's options (nothing is built)."""
    import inspect

    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(list_architectures())}")
    params = inspect.signature(_REGISTRY[name]).parameters
    options = sorted(p for p in params if p not in ("in_channels", "n_classes"))
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))}; valid: {', '.join(options)}")


class StridedConv1x1(nn.Conv2d):
    """A 1x1 convolution with stride s, computed as a stride-1 convolution of every s-th pixel.

    The same numbers as `nn.Conv2d(c_in, c_out, 1, s)` (and the same state-dict keys), but it avoids a
    crash in torch 2.14's CPU kernel: the weight gradient of a strided 1x1 convolution in channels-last
    segfaults for odd batch sizes on more than one thread.
    """

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(c_in, c_out, 1, 1, bias=False)
        self.step = stride

    def forward(self, x):
        return F.conv2d(x[:, :, :: self.step, :: self.step], self.weight)


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convolutions and a shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(StridedConv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet for small images: 3x3 stem, BasicBlock stages that halve the resolution.

    `stages` gives the number of blocks per stage; stage s has width * 2**s channels.
    `stem_stride` 2 halves the resolution in the stem, which makes every block 4x cheaper.
    `features(x)` returns the output of the stem and of every stage (for probes).
    """

    def __init__(self, *, in_channels: int, n_classes: int, width: int = 16, stages: tuple[int, ...] = (2, 2, 2, 2),
                 stem_stride: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        blocks, c_in = [], width
        for s, n in enumerate(stages):
            c_out = width * 2**s
            layers = [BasicBlock(c_in if i == 0 else c_out, c_out, 2 if (i == 0 and s > 0) else 1) for i in range(n)]
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.ModuleList(blocks)
        self.fc = nn.Linear(c_in, n_classes)

    def features(self, x) -> list[torch.Tensor]:
        outs = [x := self.stem(x)]
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(4 * growth), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class SmallDenseNet(nn.Module):
    """A DenseNet-BC for small images (the paper's "different architecture" used DenseNet-121).

    Dense blocks of bottleneck layers with concatenated features, joined by
    transitions (1x1 conv, 2x2 average pool) that halve channels and resolution.
    """

    def __init__(self, *, in_channels: int, n_classes: int, growth: int = 12, blocks: tuple[int, ...] = (3, 3, 3)):
        super().__init__()
        c = 2 * growth
        self.stem = nn.Conv2d(in_channels, c, 3, 1, 1, bias=False)
        stages = []
        for b, n in enumerate(blocks):
            layers = []
            for _ in range(n):
                layers.append(_DenseLayer(c, growth))
                c += growth
            if b < len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, n_classes)

    def features(self, x) -> list[torch.Tensor]:
        outs = [x := self.stem(x)]
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1), 1))


@register_architecture
def resnet_small(*, in_channels: int, n_classes: int, width: int = 16, depth: int = 18,
                 stem_stride: int = 1) -> nn.Module:
    """Small-image ResNet. depth 18 = (2, 2, 2, 2) blocks as ResNet-18; depth 8 = (1, 1, 1)."""
    stages = {8: (1, 1, 1), 10: (1, 1, 1, 1), 14: (2, 2, 2), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
    if depth not in stages:
        raise ValueError(f"resnet_small depth must be one of {sorted(stages)}, got {depth}")
    if stem_stride not in (1, 2):
        raise ValueError(f"resnet_small stem_stride must be 1 or 2, got {stem_stride}")
    return SmallResNet(in_channels=in_channels, n_classes=n_classes, width=width, stages=stages[depth],
                       stem_stride=stem_stride)


@register_architecture
def densenet_small(*, in_channels: int, n_classes: int, growth: int = 12, depth: int = 3) -> nn.Module:
    """Small-image DenseNet-BC with three dense blocks of `depth` layers each."""
    return SmallDenseNet(in_channels=in_channels, n_classes=n_classes, growth=growth, blocks=(depth,) * 3)


@register_architecture
def vgg_small(*, in_channels: int, n_classes: int, width: int = 16, depth: int = 2) -> nn.Module:
    """A plain VGG-style stack: `depth` 3x3 conv-BN-ReLU layers per stage, max-pooling between 3 stages."""
    layers, c_in = [], in_channels
    for s in range(3):
        c_out = width * 2**s
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        if s < 2:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes))

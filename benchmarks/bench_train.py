"""Training throughput: our trainer (per-epoch recording included) against two peers in the same run.

1. the machine's limit: the pure train step on pre-loaded tensors, no augmentation, no recording;
2. a standard torchvision DataLoader loop as in pytorch/examples (per-sample PIL transforms).
All three train the same network on the same Fashion-MNIST subset for the same number of epochs.
Run: .venv/bin/python benchmarks/bench_train.py [--epochs 2] [--train-size 60000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audit.data import load_dataset
from audit.models.architectures import create_architecture
from audit.models.variants import preset_variants
from audit.running.train import Normalizer, TensorData, train_variant

OUT = Path(__file__).parent / "out"


def pure_train_step(spec, train: TensorData, n_classes: int, epochs: int) -> float:
    """The limit: the same model, optimizer and batches, straight from pre-normalised tensors."""
    torch.manual_seed(0)
    model = create_architecture(spec.arch, in_channels=train.images.shape[1], n_classes=n_classes,
                                **spec.arch_kwargs).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    norm = Normalizer.fit(train)
    x_all = norm(train.images, True)
    y_all = train.labels
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(y_all))
        for b in range(0, len(y_all), spec.batch_size):
            idx = perm[b : b + spec.batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def dataloader_loop(spec, images: np.ndarray, labels: np.ndarray, val_images, val_labels, n_classes: int,
                    epochs: int) -> float:
    """pytorch/examples style: a Dataset of PIL images, torchvision transforms, a DataLoader; eval each epoch."""
    import torchvision.transforms as T
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    mean, std = float(images.mean() / 255), float(images.std() / 255)

    class PilDataset(Dataset):
        def __init__(self, x, y, train):
            self.x, self.y = x, y
            aug = [T.RandomCrop(images.shape[1], padding=2)] if train else []
            self.tf = T.Compose([*aug, T.ToTensor(), T.Normalize([mean], [std])])

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.tf(Image.fromarray(self.x[i, ..., 0])), int(self.y[i])

    torch.manual_seed(0)
    model = create_architecture(spec.arch, in_channels=1, n_classes=n_classes, **spec.arch_kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    train_loader = DataLoader(PilDataset(images, labels, True), batch_size=spec.batch_size, shuffle=True,
                              num_workers=0)
    val_loader = DataLoader(PilDataset(val_images, val_labels, False), batch_size=1000, num_workers=0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            for x, _ in val_loader:
                torch.softmax(model(x), 1).max(1)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--val-size", type=int, default=10000)
    args = parser.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    ds = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    tr_idx = np.sort(rng.permutation(len(ds.train))[: args.train_size])
    va_idx = np.arange(min(args.val_size, len(ds.val)))
    spec = preset_variants("quick", epochs=args.epochs)[0]
    spec = type(spec)(**{**spec.to_dict(), "lr_milestones": tuple(spec.lr_milestones), "train_size": None})
    dev = torch.device("cpu")
    train = TensorData.from_numpy(np.array(ds.train.images[tr_idx]), ds.train.labels[tr_idx], dev)
    val = TensorData.from_numpy(np.array(ds.val.images[va_idx]), ds.val.labels[va_idx], dev)

    limit = pure_train_step(spec, train, 10, args.epochs)
    ours = train_variant(spec, train, val, 10, device=dev).seconds
    loader = dataloader_loop(spec, ds.train.images[tr_idx], ds.train.labels[tr_idx], ds.val.images[va_idx],
                             ds.val.labels[va_idx], 10, args.epochs)
    images = args.train_size * args.epochs
    result = {
        "benchmark": "training throughput",
        "setup": f"{spec.arch} {spec.arch_kwargs}, Fashion-MNIST {args.train_size} train images x {args.epochs} "
                 f"epochs, batch {spec.batch_size}; ours and the DataLoader loop also evaluate "
                 f"{len(va_idx)} val images every epoch (ours also before training)",
        "threads": torch.get_num_threads(),
        "seconds": {"pure_train_step": limit, "ours_with_recording": ours, "torchvision_dataloader": loader},
        "images_per_second": {"pure_train_step": images / limit, "ours_with_recording": images / ours,
                              "torchvision_dataloader": images / loader},
        "ratios": {
            "ours_over_limit_time": ours / limit,
            "speedup_over_dataloader": loader / ours,
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "train.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

"""Fashion-MNIST: wall-clock time to 94% test accuracy on one GPU.

The fast path a GPU allows: the whole data set resident on the GPU as one tensor (no loader),
random crop + flip augmentation done there in bulk, a small VGG-style CNN with batch norm in
``channels_last`` memory format under bf16 autocast, SGD with Nesterov momentum, label
smoothing and a one-cycle learning rate. Test accuracy (with flip test-time augmentation) is
measured after every epoch; the clock (CUDA-synchronised) stops at the first epoch at or above
the target. The data come from the project's loaders (``FITBOARD_DATA_DIR``), normalised as a
run would be.

Not yet run on a GPU (no GPU on the development machines). ``--device cpu --epochs 1
--subset 2000`` only checks that it runs.

Usage: ``.venv/bin/python bench/gpu_fmnist.py [--target 0.94] [--epochs 30] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

BATCH = 512  # rows per step
LR = 0.2  # peak of the one-cycle schedule, per step
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4 * BATCH / 512
LABEL_SMOOTHING = 0.1
CROP_PAD = 2  # pixels of padding for the random crop


def block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.GELU(),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs),
        nn.GELU(),
    )


class Net(nn.Module):
    """Three conv blocks (64, 128, 256 channels), each halving the image, then a linear head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            block(1, 64), nn.MaxPool2d(2),  # 28 → 14
            block(64, 128), nn.MaxPool2d(2),  # 14 → 7
            block(128, 256), nn.AdaptiveMaxPool2d(1),
        )
        self.head = nn.Linear(256, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def load(device: torch.device, subset: int) -> tuple[torch.Tensor, ...]:
    """Train and test images (N, 1, 28, 28, normalised) and labels, on ``device``."""
    from training.data import DataSources, prepare

    data_dir = Path(os.environ.get("FITBOARD_DATA_DIR", Path(__file__).parents[2] / "shared/data"))
    data = prepare("fashion_mnist", 0.02, 0, subset=subset,
                   sources=DataSources(data_dir=data_dir, allow_download=False))
    assert isinstance(data.x_train, torch.Tensor) and isinstance(data.x_test, torch.Tensor)
    assert data.y_test is not None
    shape = (-1, 1, 28, 28)
    return (data.x_train.reshape(shape).to(device), data.y_train.to(device),
            data.x_test.reshape(shape).to(device), data.y_test.to(device))


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (pad 2, shift up to ±2 pixels) and horizontal flip, for a whole epoch."""
    n, size = len(x), x.shape[-1]
    padded = F.pad(x, (CROP_PAD,) * 4, mode="reflect")
    dx, dy = (torch.randint(0, 2 * CROP_PAD + 1, (2,), generator=generator,
                            device=x.device).tolist())
    # One shift per epoch-chunk keeps it a cheap slice; the flip is per row.
    out = padded[..., dy:dy + size, dx:dx + size]
    flip = torch.rand(n, generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: torch.dtype | None
             ) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), 2048):
        xb = x[start:start + 2048].contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=precision or torch.float32,
                            enabled=precision is not None):
            logits = model(xb) + model(xb.flip(-1))  # flip test-time augmentation
        correct += int((logits.argmax(1) == y[start:start + 2048]).sum())
    return correct / len(x)


def train_once(device: torch.device, data: tuple[torch.Tensor, ...], target: float,
               epochs: int, seed: int) -> tuple[float | None, int, float]:
    """(seconds to ``target`` or None, epochs run, final test accuracy)."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    precision = torch.bfloat16 if device.type == "cuda" else None
    model = Net().to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = len(x_train) // BATCH
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True,
                                weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=epochs *
                                                   steps_per_epoch, pct_start=0.25)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    acc = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator, device=device)
        inputs = augment(x_train, generator)[order].contiguous(memory_format=torch.channels_last)
        labels = y_train[order]
        for step in range(steps_per_epoch):
            xb = inputs[step * BATCH:(step + 1) * BATCH]
            yb = labels[step * BATCH:(step + 1) * BATCH]
            with torch.autocast(device.type, dtype=precision or torch.float32,
                                enabled=precision is not None):
                loss = F.cross_entropy(model(xb).float(), yb, label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        acc = accuracy(model, x_test, y_test, precision)
        if acc >= target:
            sync()
            return time.perf_counter() - started, epoch, acc
    return None, epochs, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--target", type=float, default=0.94)
    parser.add_argument("--epochs", type=int, default=30, help="most epochs per attempt")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=0, help="rows to load (0: all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}")
    data = load(device, args.subset)
    print(f"{len(data[0])} training rows, {len(data[2])} test rows, resident on {device}")
    train_once(device, data, 2.0, 1, seed=99)  # warm-up: cuDNN autotuning, lazy init
    times = []
    for run in range(args.runs):
        seconds, epochs, acc = train_once(device, data, args.target, args.epochs, seed=run)
        reached = f"{seconds:.2f} s" if seconds is not None else "not reached"
        print(f"run {run}: {args.target:.0%} test accuracy {reached} "
              f"({epochs} epochs, test accuracy {acc:.4f})", flush=True)
        if seconds is not None:
            times.append(seconds)
    if times:
        print(f"time to {args.target:.0%}: median {statistics.median(times):.2f} s over "
              f"{len(times)}/{args.runs} runs")


if __name__ == "__main__":
    main()

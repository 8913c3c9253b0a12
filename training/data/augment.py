"""Image augmentation as batched tensor ops on the training device (no torchvision).

Applied to training batches only: validation and test data are never augmented. Every op draws
from one ``torch.Generator`` on the batch's device, so a seed replays the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Which ops run, with their strengths (see ``DataSpec`` for the fields' meaning)."""

    crop_padding: int = 0  # pixels of zero padding before a random crop back to size
    flip: bool = False  # horizontal flip of half the images
    rotation: float = 0.0  # largest rotation, in degrees, either way
    noise: float = 0.0  # std of Gaussian noise added to normalised pixels

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.flip or self.rotation or self.noise)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """An augmented copy of a batch of images shaped (N, C, H, W)."""
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.rotation:
            x = random_rotation(x, self.rotation, generator)
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=generator, device=x.device,
                                             dtype=x.dtype)
        return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each image with zeros (the mean, after normalisation) and cut a window of the original
    size at a random offset per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (n, 1, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left to right."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_rotation(x: torch.Tensor, degrees: float, generator: torch.Generator
                    ) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] about its centre, filling the
    corners with zeros."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator, device=x.device) * 2 - 1) * math.radians(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

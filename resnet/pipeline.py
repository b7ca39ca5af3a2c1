"""The two input pipelines: the authors' (torchvision transforms in a 2-worker DataLoader)
and a device-resident one that draws the same augmentation on the device.

Both yield normalised float batches in the order (images, labels). The fast one keeps
the whole uint8 dataset on the device, pads it once, and per image draws a crop offset
in [0, 2*pad] on each axis and a flip with probability 1/2, exactly the distribution of
RandomCrop(32, padding=pad) + RandomHorizontalFlip.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


class DeviceLoader:
    """Batches from uint8 tensors already on `device`; no host round trip per step."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        device: torch.device,
        *,
        train: bool,
        pad: int = 4,
        flip: bool = True,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
    ):
        self.device, self.batch_size, self.train = device, batch_size, train
        self.pad, self.flip, self.generator = (pad if train else 0), (flip and train), generator
        self.channels_last = channels_last
        images = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        # Zero padding on raw pixels, as RandomCrop pads the uint8 PIL image before ToTensor.
        self.x = F.pad(images, (self.pad,) * 4) if self.pad else images
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        self.side = x.shape[-1]

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image random crop and flip of a padded uint8 batch."""
        b, span = x.shape[0], 2 * self.pad + 1
        if self.pad:
            dy = torch.randint(0, span, (b,), device=self.device, generator=self.generator)
            dx = torch.randint(0, span, (b,), device=self.device, generator=self.generator)
            r = torch.arange(self.side, device=self.device)
            rows = (dy[:, None] + r)[:, None, :, None]
            cols = (dx[:, None] + r)[:, None, None, :]
            n = torch.arange(b, device=self.device)[:, None, None, None]
            c = torch.arange(x.shape[1], device=self.device)[None, :, None, None]
            x = x[n, c, rows, cols]
        if self.flip:
            flip = torch.rand(b, device=self.device, generator=self.generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def __iter__(self):
        n = len(self.y)
        order = (
            torch.randperm(n, device=self.device, generator=self.generator)
            if self.train
            else torch.arange(n, device=self.device)
        )
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            x = self.x[idx]
            if self.train:
                x = self.augment(x)
            # ToTensor then Normalize, op for op, so the values match the reference bit for bit.
            x = (x.float().div(255) - self.mean) / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.y[idx]


class _ArrayDataset(torch.utils.data.Dataset):
    """torchvision's CIFAR10 __getitem__ over arrays: PIL image through the transform."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x.transpose(0, 2, 3, 1), y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def reference_transform(train: bool, pad: int = 4, flip: bool = True):
    import torchvision.transforms as T

    steps = []
    if train:
        if pad:
            steps.append(T.RandomCrop(32, padding=pad))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps + [T.ToTensor(), T.Normalize(MEAN, STD)])


def reference_loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    train: bool,
    pad: int = 4,
    flip: bool = True,
    num_workers: int = 2,
    pin_memory: bool = False,
):
    """The authors' loader: torchvision transforms, shuffled train, `num_workers` processes.

    Workers are not persistent (as the authors ran it): each epoch's workers are seeded
    from the main RNG, so restoring that RNG on resume replays the same augmentation.
    """
    ds = _ArrayDataset(x, y, reference_transform(train, pad, flip))
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=train, num_workers=num_workers, pin_memory=pin_memory
    )

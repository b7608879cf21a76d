"""A split held as a uint8 tensor on the device (`TensorData`), and its per-channel normalisation
(`Normalizer`): what the trainer, the probes and the learnability job feed to a network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TensorData:
    """A split as a uint8 tensor (n, C, H, W) on the device, with labels.

    `transform` is the dataset's input transform, which `Normalizer` applies (see `INPUT_TRANSFORMS`).
    """

    images: torch.Tensor
    labels: torch.Tensor
    transform: str = "linear"

    @classmethod
    def from_numpy(cls, images: np.ndarray, labels: np.ndarray, device: torch.device, *,
                   transform: str = "linear") -> TensorData:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
        return cls(x.to(device), torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device), transform)

    def __len__(self) -> int:
        return len(self.labels)


#: "linear": pixels as they are; "symlog": each pixel's deviation d from its channel's mean, in grey
#: levels, becomes sign(d) * log(1 + |d|) (companding, as mu-law audio), so equal ratios of amplitude
#: become equal steps. A network sees amplitudes of 1 and 2 grey levels as far apart as 50 and 100, which
#: the Gaussian control needs: there the class is the noise's sigma, and it is the ratio of neighbouring
#: sigmas that sets how separable they are (meding2022 A.5, eq. 1). Both are standardised afterwards.
INPUT_TRANSFORMS = ("linear", "symlog")


@dataclass
class Normalizer:
    mean: torch.Tensor
    std: torch.Tensor
    #: the channel means in grey levels that "symlog" measures deviations from (None for "linear")
    centre: torch.Tensor | None = None

    @classmethod
    def fit(cls, data: TensorData) -> Normalizer:
        """Per-channel statistics of (up to 10,000 of) the images, after the data's input transform.

        "symlog" takes every k-th image rather than the first ones, so data sorted by class is fully sampled.
        """
        if data.transform not in INPUT_TRANSFORMS:
            raise ValueError(f"unknown input transform {data.transform!r}; valid: {', '.join(INPUT_TRANSFORMS)}")
        every = max(1, len(data) // 10000) if data.transform == "symlog" else 1
        raw = data.images[::every][:10000].float()
        centre = raw.mean(dim=(0, 2, 3), keepdim=True) if data.transform == "symlog" else None
        x = cls._transform(raw, centre)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        return cls(mean, std, centre)

    @staticmethod
    def _transform(raw: torch.Tensor, centre: torch.Tensor | None) -> torch.Tensor:
        if centre is None:
            return raw / 255.0
        deviation = raw - centre
        return torch.sign(deviation) * torch.log1p(deviation.abs())

    def __call__(self, x_uint8: torch.Tensor, channels_last: bool) -> torch.Tensor:
        x = (self._transform(x_uint8.float(), self.centre) - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

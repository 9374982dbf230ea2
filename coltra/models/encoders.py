"""Per-field encoders: what each observation field goes through before a network's hidden
layers.

An observation may have several fields (``image`` and ``vector``, ``rays`` and ``goal``...).
Each field a network reads is encoded on its own, then the encodings are concatenated in the
field order:

* ``flatten``: the field as it is, flattened (the default for every field);
* ``mlp``: a small MLP of its own (``encoder_sizes`` units, the model's activation), for a
  vector field that deserves features of its own before it meets the others;
* ``cnn``: the small CNN (:class:`ImageEncoder`) over an ``[H, W, C]`` image field.

``MLPModel`` gives the policy and the value network an encoder each by default (they learn
different features), or one shared by both (``share_encoders``, always with
``shared_backbone``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["ENCODERS", "FieldEncoders", "ImageEncoder", "init_layer"]

#: The encoders a field can have.
ENCODERS = ("flatten", "mlp", "cnn")


def init_layer(layer: nn.Linear | nn.Conv2d, initializer: str, gain: float) -> None:
    """Orthogonal init with a per-layer gain is the PPO default (Engstrom et al. 2020).

    ``kaiming_uniform`` ignores ``gain``; ``default`` keeps PyTorch's own init.
    """
    if initializer == "default":
        return
    if initializer == "orthogonal":
        nn.init.orthogonal_(layer.weight, gain)
    elif initializer == "kaiming_uniform":
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
    elif initializer == "xavier_uniform":
        nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class ImageEncoder(nn.Module):
    """3x3 convolutions (one per entry of ``channels``, same padding) over an
    ``[batch, H, W, C]`` image, flattened to ``[batch, out_size]``."""

    def __init__(
        self, image_shape: tuple[int, int, int], channels: list[int], initializer: str
    ) -> None:
        super().__init__()
        self.image_shape = image_shape
        height, width, in_channels = image_shape
        layers: list[nn.Module] = []
        for out_channels in channels:
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            init_layer(conv, initializer, math.sqrt(2))
            layers += [conv, nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        self.out_size = in_channels * height * width

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[1:]) != self.image_shape:
            raise ValueError(
                f"image observation has shape {list(image.shape[1:])} per item, the CNN "
                f"encoder expects {list(self.image_shape)} (height, width, channels)"
            )
        return self.net(image.float().permute(0, 3, 1, 2))


class VectorEncoder(nn.Module):
    """A small MLP over one flattened field: ``[batch, size]`` -> ``[batch, sizes[-1]]``."""

    def __init__(
        self,
        size: int,
        sizes: Sequence[int],
        activation: Callable[[torch.Tensor], torch.Tensor],
        initializer: str,
    ) -> None:
        super().__init__()
        layers = [
            nn.Linear(size_in, size_out) for size_in, size_out in itertools.pairwise([size, *sizes])
        ]
        for layer in layers:
            init_layer(layer, initializer, math.sqrt(2))
        self.layers = nn.ModuleList(layers)
        self.activation = activation
        self.out_size = sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1).float()
        for layer in self.layers:
            x = self.activation(layer(x))
        return x


class FieldEncoders(nn.Module):
    """Every field a network reads through its encoder, concatenated in order.

    ``fields`` maps each field to the shape of one item (in the order the network reads
    them); ``choices`` maps fields to ``flatten``, ``mlp`` or ``cnn`` (missing: flatten).
    ``forward`` takes the fields' tensors in that order, ``[batch, ...]`` each, and gives
    ``[batch, out_size]``.
    """

    def __init__(
        self,
        fields: Mapping[str, tuple[int, ...]],
        choices: Mapping[str, str],
        encoder_sizes: Sequence[int],
        cnn_channels: Sequence[int],
        activation: Callable[[torch.Tensor], torch.Tensor],
        initializer: str,
    ) -> None:
        super().__init__()
        self.names = list(fields)
        # Field names may hold dots (nested spaces), which module names may not: by index.
        self.parts = nn.ModuleList()
        self.kinds: list[str] = []
        out = 0
        for name, shape in fields.items():
            kind = choices.get(name, "flatten")
            size = math.prod(shape)
            if kind == "cnn":
                if len(shape) != 3:
                    raise ValueError(
                        f"the CNN encoder takes an image field ([H, W, C]); field '{name}' has "
                        f"items of shape {list(shape)}"
                    )
                image = ImageEncoder(
                    (shape[0], shape[1], shape[2]), list(cnn_channels), initializer
                )
                encoder: nn.Module = image
                out += image.out_size
            elif kind == "mlp":
                vector = VectorEncoder(size, encoder_sizes, activation, initializer)
                encoder = vector
                out += vector.out_size
            else:
                encoder = nn.Identity()
                out += size
            self.parts.append(encoder)
            self.kinds.append(kind)
        self.out_size = out

    def forward(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        encoded = []
        for kind, encoder, value in zip(self.kinds, self.parts, values):
            if kind == "flatten":
                encoded.append(value.reshape(value.shape[0], -1).float())
            else:
                encoded.append(encoder(value))
        return encoded[0] if len(encoded) == 1 else torch.cat(encoded, -1)

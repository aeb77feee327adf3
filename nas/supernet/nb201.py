"""The NAS-Bench-201 cell network (Dong & Yang, ICLR 2020) as plain PyTorch.

The standard NAS-Bench-201 macro skeleton: a 3x3 stem convolution, three stages of ``N`` cells
(``C``, ``2C``, ``4C`` channels) separated by residual reduction blocks, then BN-ReLU, global
average pooling and a linear classifier. A cell has 4 nodes; node ``i`` is the sum over
``j < i`` of ``op_{j,i}(node_j)`` and node 3 is the output. Operations are ``none`` (zero),
``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU-Conv-BN) and
``avg_pool_3x3``.

Besides the module, this file computes exact cost figures (parameters and multiply-accumulates)
of a cell network without building it, vectorised over many configs.

>>> from nas.searchspace import get_space
>>> space = get_space("nb201")
>>> cfg = space.parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
...                        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
>>> net = build_nb201(cfg)
>>> sum(p.numel() for p in net.parameters()) == int(nb201_costs([cfg])["params"][0])
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import ConfigError

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
EDGE_PATHS: tuple[str, ...] = tuple(f"edge_{j}_{i}" for j, i in EDGES)


def cell_ops(config: Mapping[str, Any] | Any) -> tuple[str, ...]:
    """The six edge operations of a config (in :data:`EDGE_PATHS` order), validated."""
    try:
        ops = tuple(str(config[p]) for p in EDGE_PATHS)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"not a NAS-Bench-201 config (needs {', '.join(EDGE_PATHS)}): "
                          f"{e}") from None
    for p, op in zip(EDGE_PATHS, ops):
        if op not in OPS:
            raise ConfigError(f"{p}: unknown NAS-Bench-201 operation {op!r}; allowed: "
                              f"{', '.join(OPS)}")
    return ops


class ReLUConvBN(nn.Module):
    """ReLU, then a bias-free convolution, then batch norm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` operation: a zero tensor of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """One cell operation on ``channels`` channels at stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ConfigError(f"unknown NAS-Bench-201 operation {name!r}; allowed: {', '.join(OPS)}")


class NB201Cell(nn.Module):
    """A NAS-Bench-201 cell: node ``i`` sums ``op_{j,i}(node_j)`` over ``j < i``."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(make_op(op, channels) for op in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in range(1, 4):
            acc = None
            for e, (j, k) in enumerate(EDGES):
                if k != i:
                    continue
                y = self.edges[e](nodes[j])
                acc = y if acc is None else acc + y
            nodes.append(acc)
        return nodes[3]


class ResidualReduction(nn.Module):
    """The stride-2 residual block between stages (ResNet basic block, avg-pool shortcut)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 macro network around one cell genotype.

    Args:
        ops: the six edge operations (:data:`EDGE_PATHS` order).
        channels: channels of the first stage (16 in NAS-Bench-201).
        cells_per_stage: ``N`` (5 in NAS-Bench-201).
        num_classes: classifier outputs (10 for CIFAR-10).
        in_channels: input image channels.
    """

    def __init__(self, ops: Sequence[str], *, channels: int = 16, cells_per_stage: int = 5,
                 num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        cells: list[nn.Module] = []
        c_prev = channels
        for stage in range(3):
            c = channels * 2 ** stage
            if stage > 0:
                cells.append(ResidualReduction(c_prev, c))
            cells.extend(NB201Cell(self.ops, c) for _ in range(cells_per_stage))
            c_prev = c
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        x = self.lastact(self.cells(self.stem(x)))
        return self.global_pooling(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def build_nb201(config: Mapping[str, Any] | Any, **kwargs: Any) -> NB201Network:
    """The NAS-Bench-201 network of a ``nb201`` config (keyword arguments as
    :class:`NB201Network`)."""
    return NB201Network(cell_ops(config), **kwargs)


def nb201_costs(configs: Sequence[Mapping[str, Any] | Any], *, channels: int = 16,
                cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3,
                resolution: int = 32) -> dict[str, np.ndarray]:
    """Exact parameter counts and multiply-accumulates (convolutions and the classifier; BN,
    pooling and additions not counted) of the networks of many configs, without building them.

    Returns:
        ``{"params": ..., "macs": ...}``, float arrays of shape ``(len(configs),)``.
    """
    ops = np.array([cell_ops(c) for c in configs], dtype=object).reshape(-1, 6)
    n1 = (ops == "nor_conv_1x1").sum(axis=1).astype(np.float64)
    n3 = (ops == "nor_conv_3x3").sum(axis=1).astype(np.float64)
    params = 0.0
    macs = 0.0
    # stem conv + BN
    hw = resolution * resolution
    params += in_channels * channels * 9 + 2 * channels
    macs += in_channels * channels * 9 * hw
    cell_p = np.zeros(len(ops))
    cell_m = np.zeros(len(ops))
    c_prev = channels
    for stage in range(3):
        c = channels * 2 ** stage
        if stage > 0:
            hw_out = (resolution // 2 ** stage) ** 2
            params += c_prev * c * 9 + 2 * c + c * c * 9 + 2 * c + c_prev * c
            macs += (c_prev * c * 9 + c * c * 9 + c_prev * c) * hw_out
        hw_s = (resolution // 2 ** stage) ** 2
        per_cell_p = n1 * (c * c + 2 * c) + n3 * (c * c * 9 + 2 * c)
        per_cell_m = (n1 * c * c + n3 * c * c * 9) * hw_s
        cell_p += cells_per_stage * per_cell_p
        cell_m += cells_per_stage * per_cell_m
        c_prev = c
    params += 2 * c_prev + c_prev * num_classes + num_classes
    macs += c_prev * num_classes
    return {"params": params + cell_p, "macs": macs + cell_m}

"""Zero-cost proxies computed on the real, freshly initialised network of a config.

Proxies (each a float per network; larger is "better" for all of them):

- ``synflow`` (Tanaka et al. 2020, as used by Abdelfattah et al. 2021): batch norm removed,
  weights replaced by their absolute values, float64, an all-ones input; the score is
  ``log(sum |theta * dR/dtheta|)`` with ``R`` the summed output. Needs no data. The method
  relies on the network being linear for that positive input (ReLUs pass everything): so
  activations that saturate (ReLU6 / hardtanh) act as ReLU, and fake quantization (weights
  and activations, whose clamps cut the gradient) is switched off -- synflow scores the
  architecture; a config's bit widths reach a predictor through its encoding. Without this,
  ReLU6 and the activation clips saturated under the growing positive activations and the
  score of a ``mobilenet_like`` config depended on its head width alone. Gates that
  saturate by design stay as they are (the sigmoid of squeeze-excitation, ``ese``'s hard
  sigmoid): under the growing positive activations they sit at 1, so the gate's own weights
  get almost no synflow score while the gated path passes it on.
- ``naswot`` (Mellor et al. 2021): ``log|det K|`` of the Hamming-similarity kernel of the
  binary ReLU activation codes of a batch. The codes are read at every rectifier-like
  activation the forward pass calls -- ReLU, ReLU6 (hardtanh), leaky ReLU, GELU, SiLU,
  hardswish, as modules or as functions (a torch function mode sees both) -- as "input > 0"
  (Mellor et al.'s code reads the inputs of every module whose type names ReLU). Hooks on
  ``nn.ReLU`` modules alone saw none of the supernet families' block activations (called
  as functions), so their kernel was empty.
- ``snip`` (Lee et al. 2019): ``log(sum |theta * dL/dtheta|)`` for a cross-entropy loss.
- ``grad_norm``: ``log`` of the summed L2 norms of the weight gradients of that loss.
- ``jacov`` (Mellor et al. 2020): the input-Jacobian correlation score
  ``-sum(log(v + k) + 1/(v + k))`` over the eigenvalues ``v`` of the correlation matrix of
  per-sample input gradients, ``k = 1e-5``.

The batch of naswot/snip/grad_norm/jacov is random Gaussian noise with random labels (no
dataset needed; :func:`data_proxies` takes any batch for a caller that has one). Everything is
seeded: weights come from a ``torch.Generator`` and the same seed gives the same value.
Values are cached in a JSON-lines file under a directory the caller chooses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError, UsageError
from nas.utils.files import atomic_write_bytes

log = logging.getLogger(__name__)

PROXIES: tuple[str, ...] = ("synflow", "naswot", "snip", "grad_norm", "jacov")
# bumped when a proxy's definition changes (part of the cache key)
PROXY_VERSION = 4
# the families whose proxy values each version changed (a version not listed: all of them);
# 3: naswot's activations and synflow's linearisation (nb201's values are the same);
# 4: vit_like's networks (ViT-ResNAS's fixed head width and reduction skip)
PROXY_CHANGES: dict[int, frozenset[str]] = {
    3: frozenset({"resnet_like", "mobilenet_like", "vit_like"}),
    4: frozenset({"vit_like"})}


def proxies_changed_since(version: int, family: str | None) -> bool:
    """Whether proxy values of ``family`` computed by definition ``version`` may differ from
    this version's."""
    return any(family is None or family in PROXY_CHANGES.get(v, frozenset({family}))
               for v in range(int(version) + 1, PROXY_VERSION + 1))


class ProxyCacheError(NasError):
    """A proxy cache file that cannot be read."""


@dataclass(frozen=True)
class ProxySettings:
    """What a proxy value depends on (part of the cache key).

    Args:
        batch: images in the data batch of naswot/snip/grad_norm/jacov.
        resolution: input height and width.
        num_classes: classifier outputs.
        seed: seeds the weight initialisation, the batch and the labels.
    """

    batch: int = 16
    resolution: int = 32
    num_classes: int = 10
    seed: int = 0

    def key(self) -> str:
        # PROXY_VERSION: cached values computed by an older definition are not reused
        d = {**asdict(self), "proxy_version": PROXY_VERSION}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _init_weights(net: Any, gen: Any) -> None:
    """Kaiming-normal convolutions, normal(0, 0.01) linear layers, unit BN: all from ``gen``."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu",
                                        generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=gen)
                m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()


def _weights(net: Any) -> list[Any]:
    from torch import nn

    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _safe_log(v: float) -> float:
    return math.log(v) if v > 0 and math.isfinite(v) else float("-inf") if v == 0 else float("nan")


def _rectifiers() -> frozenset[Any]:
    """The rectifier-like activation functions (as a torch function mode sees them: an
    ``nn.ReLU`` module calls ``F.relu``, ``nn.ReLU6`` calls ``F.hardtanh``)."""
    import torch
    import torch.nn.functional as F

    return frozenset({F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.hardtanh,
                      F.hardtanh_, F.leaky_relu, F.leaky_relu_, F.gelu, F.silu, F.hardswish,
                      F.elu, F.selu, F.celu, F.mish, torch.Tensor.relu, torch.Tensor.relu_})


def _activation_mode(on_call: Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]
                     ) -> Any:
    """A torch function mode that hands every rectifier call to ``on_call(func, x, args,
    kwargs)`` (which returns its result) and runs everything else as it is."""
    from torch.overrides import TorchFunctionMode

    acts = _rectifiers()

    class _Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            kwargs = kwargs or {}
            if func in acts:
                x = args[0] if args else kwargs.get("input")
                if x is not None:
                    return on_call(func, x, args, kwargs)
            return func(*args, **kwargs)

    return _Mode()


def _linearize_for_synflow(net: Any) -> None:
    """Batch norm and fake quantization out, weights of 32 bits (in place)."""
    from torch import nn

    from nas.supernet.static import FakeQuantAct

    def strip(mod: nn.Module) -> None:
        for name, child in mod.named_children():
            if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d, FakeQuantAct)):
                setattr(mod, name, nn.Identity())
            else:
                strip(child)

    strip(net)
    for m in net.modules():
        if hasattr(m, "bits") and isinstance(m.bits, int):
            m.bits = 32  # QConv2d / QLinear: a plain convolution / linear layer


def synflow(net: Any, input_shape: Sequence[int]) -> float:
    """The synflow score of ``net`` (modified in place: BN and fake quantization removed,
    weights made absolute, float64; saturating rectifiers act as ReLU). ``input_shape`` is
    ``(C, H, W)``."""
    import torch
    import torch.nn.functional as F

    _linearize_for_synflow(net)
    net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    saturating = {F.relu6, F.hardtanh, F.hardtanh_}

    def as_relu(func: Any, x: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return F.relu(x) if func in saturating else func(*args, **kwargs)

    with _activation_mode(as_relu):
        out = net(torch.ones((1, *input_shape), dtype=torch.float64))
    out.sum().backward()
    total = sum(float((w.detach() * w.grad).abs().sum())
                for w in _weights(net) if w.grad is not None)
    return _safe_log(total)


def data_proxies(net: Any, x: Any, labels: Any) -> dict[str, float]:
    """naswot, snip, grad_norm and jacov of ``net`` (in train mode) on batch ``x``."""
    import torch
    from torch import nn

    net.train()
    codes: list[Any] = []
    n = x.shape[0]

    def record(func: Any, inp: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if isinstance(inp, torch.Tensor) and inp.dim() >= 1 and inp.shape[0] == n:
            codes.append((inp.detach().flatten(1) > 0).to(torch.float64))
        return func(*args, **kwargs)

    x = x.clone().requires_grad_(True)
    net.zero_grad(set_to_none=True)
    with _activation_mode(record):
        out = net(x)
    k_mat = torch.zeros((n, n), dtype=torch.float64)
    for c in codes:
        k_mat += c @ c.T + (1 - c) @ (1 - c).T
    _, logdet = torch.linalg.slogdet(k_mat)
    if int(labels.max()) >= out.shape[1]:
        raise UsageError(f"zero-cost proxies: labels up to {int(labels.max())} for a network "
                         f"with {out.shape[1]} outputs (ProxySettings.num_classes must match "
                         "the network)")
    loss = nn.functional.cross_entropy(out, labels)
    weights = _weights(net)
    grads = torch.autograd.grad(loss, weights, retain_graph=True)
    snip = sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads))
    gnorm = sum(float(g.norm()) for g in grads)
    (jac,) = torch.autograd.grad(out.sum(), x)
    jac = jac.reshape(n, -1).to(torch.float64)
    if bool((jac.std(dim=1) == 0).any()):
        # an input that does not reach the output (a cut-off cell): the correlation is
        # undefined, as in the published code; -inf becomes the features' fixed fill
        jacov = float("-inf")
    else:
        corr = torch.nan_to_num(torch.corrcoef(jac), nan=0.0)
        eig = torch.linalg.eigvalsh(corr).clamp_min(0.0)
        k = 1e-5
        jacov = -float(torch.sum(torch.log(eig + k) + 1.0 / (eig + k)))
    return {"naswot": float(logdet), "snip": _safe_log(snip), "grad_norm": _safe_log(gnorm),
            "jacov": jacov}


def compute_proxies(build: Callable[[], Any], settings: ProxySettings,
                    proxies: Sequence[str] = PROXIES, in_channels: int = 3) -> dict[str, float]:
    """Compute ``proxies`` for the network that ``build()`` returns (called once per needed
    fresh copy; each copy gets the same seeded initialisation)."""
    import torch

    unknown = [p for p in proxies if p not in PROXIES]
    if unknown:
        raise UsageError(f"unknown zero-cost proxies {unknown}; known: {', '.join(PROXIES)}")
    shape = (in_channels, settings.resolution, settings.resolution)
    out: dict[str, float] = {}
    if any(p != "synflow" for p in proxies):
        gen = torch.Generator().manual_seed(settings.seed)
        net = build()
        _init_weights(net, gen)
        data_gen = torch.Generator().manual_seed(settings.seed + 1)
        x = torch.randn((settings.batch, *shape), generator=data_gen)
        labels = torch.randint(0, settings.num_classes, (settings.batch,), generator=data_gen)
        vals = data_proxies(net, x, labels)
        out.update({p: vals[p] for p in proxies if p in vals})
    if "synflow" in proxies:
        gen = torch.Generator().manual_seed(settings.seed)
        net = build()
        _init_weights(net, gen)
        out["synflow"] = synflow(net, shape)
    return {p: out[p] for p in proxies}


class ProxyCache:
    """Proxy values keyed by (space fingerprint, architecture id, settings), stored as one
    JSON object per line in ``<directory>/proxies-<space>-<settings key>.jsonl``. Appends are
    line-atomic enough for one writer; a torn last line (a killed writer) is dropped on
    loading, any other unreadable line raises :class:`ProxyCacheError`."""

    def __init__(self, directory: str | os.PathLike[str], space_name: str, fingerprint: str,
                 settings: ProxySettings) -> None:
        self.path = Path(directory) / (
            f"proxies-{space_name}-{fingerprint[:12]}-{settings.key()}.jsonl")
        self._values: dict[str, dict[str, float]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        """Read the file. A torn last record (a kill during :meth:`put`) is dropped with a
        warning and the file rewritten without it, so that later appends start on a line of
        their own; any other unreadable record raises :class:`ProxyCacheError`."""
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the file ends with a newline, as it should
        last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)
        keep = []
        rewrite = not data.endswith(b"\n") and bool(data)
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                if lineno == last:
                    log.warning("%s:%d: dropping the torn last record, left by an "
                                "interrupted write (%s); its values are recomputed",
                                self.path, lineno, e)
                    rewrite = True
                    continue
                raise ProxyCacheError(
                    f"{self.path}:{lineno}: not a proxy cache record ({e}); delete the file "
                    "to recompute") from None
            try:  # whole JSON of the wrong shape: not torn, a bad file
                vals = {str(k): float(v) for k, v in rec["values"].items()}
                self._values.setdefault(str(rec["id"]), {}).update(vals)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ProxyCacheError(
                    f"{self.path}:{lineno}: not a proxy cache record (expected {{\"id\": ..., "
                    "\"values\": {proxy: number}}); delete the file to recompute") from None
            keep.append(line)
        if rewrite:
            atomic_write_bytes(self.path, b"".join(k + b"\n" for k in keep))

    def get(self, arch_id: str, proxies: Iterable[str]) -> dict[str, float]:
        """The cached values among ``proxies`` (possibly fewer, possibly none)."""
        have = self._values.get(arch_id, {})
        return {p: have[p] for p in proxies if p in have}

    def put(self, arch_id: str, values: dict[str, float]) -> None:
        self._values.setdefault(arch_id, {}).update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"id": arch_id, "values": values}) + "\n")


def proxy_matrix(space: Any, configs: Sequence[Any], build: Callable[[Any], Any], *,
                 proxies: Sequence[str] = PROXIES, settings: ProxySettings | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, threads: int | None = 1,
                 progress: Callable[[int], None] | None = None,
                 in_channels: int = 3) -> np.ndarray:
    """Proxy values of many configs, shape ``(len(configs), len(proxies))``.

    Args:
        space: the configs' space (its fingerprint keys the cache).
        build: ``build(config) -> nn.Module``, the real network of a config.
        cache_dir: where to cache values (``None``: no cache).
        threads: torch intra-op threads during the computation (restored afterwards).
        progress: called with the number of configs done after each one.
    """
    import torch

    settings = settings or ProxySettings()
    proxies = tuple(proxies)
    cache = (ProxyCache(cache_dir, space.name, space.fingerprint, settings)
             if cache_dir is not None else None)
    out = np.empty((len(configs), len(proxies)))
    memo: dict[str, dict[str, float]] = {}
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for i, cfg in enumerate(configs):
            cid = cfg.id
            vals = memo.get(cid) or (cache.get(cid, proxies) if cache else {})
            missing = [p for p in proxies if p not in vals]
            if missing:
                new = compute_proxies(lambda c=cfg: build(c), settings, missing, in_channels)
                if cache:
                    cache.put(cid, new)
                vals = {**vals, **new}
            memo[cid] = vals
            out[i] = [vals[p] for p in proxies]
            if progress:
                progress(i + 1)
    finally:
        torch.set_num_threads(old_threads)
    return out

"""Subnet evaluations spread over Ray workers (``nas search --workers N``).

A search spends its time evaluating the configs its searcher proposes: each one's batch
norms are recalibrated on a few training batches and its accuracy is measured on the
validation split. Searchers propose whole populations at a time (``linas`` 10, the pymoo
searchers 20), and those evaluations are independent, so they can run side by side.

:class:`RayEvaluatorPool` starts ``workers`` Ray actors. Each deserialises its own copy of
the supernet, the validation split and the calibration batches, put once into Ray's object
store; a batch of configs is evaluated one config per task on whichever worker is free, and
the accuracies come back in the order of the configs. A worker computes what the sequential
loop computes (the same weights, the same calibration batches), so with the same torch
thread count (``--threads``; the workers' default is 1) on the same kind of CPU a search's
history does not depend on how many workers ran it, and a search started with workers can
be resumed without them and the other way round. (Another thread count changes the order
of floating-point sums: logits move by ~1e-3, which can flip a near-tie.)

Local: ``--workers N`` starts a Ray runtime of its own on this machine for the run
(N × ``--threads`` CPUs). A cluster: ``--ray-address ADDR`` (``auto``: the cluster this
machine belongs to) joins one started with ``ray start``; every node needs the same ``nas``
and torch. On ``--device cuda`` each worker asks Ray for one GPU and uses the one Ray gives
it (the index in ``cuda:N`` is not used). Workers that cannot be placed (too few CPUs or
GPUs in the cluster) or do not start are reported before any evaluation.

Ray is an optional dependency: ``pip install 'nas-toolkit[ray]'`` (the test set-up installs it).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from nas.errors import NasError, UsageError
from nas.searchspace import Config

log = logging.getLogger(__name__)

#: object-store room on top of what the workers' payload takes (local runtime only)
_STORE_SLACK = 128 * 2**20


class DistributedError(NasError):
    """A Ray worker failed (it died, or an evaluation raised in it)."""


def import_ray(flag: str = "--workers") -> Any:
    """``ray``, or a :class:`UsageError` naming ``flag`` and the install command."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"{flag}: evaluating on several workers needs Ray, which is not "
                         "installed; pip install 'nas-toolkit[ray]' (or drop the flag)") from None
    return ray


def _probe(address: str, timeout: float = 10.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nothing answers at: ``ray.init``
    retries such an address for many minutes. ``auto`` and other forms are left to Ray."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise DistributedError(f"--ray-address {address}: no Ray cluster answers there "
                               f"({type(e).__name__}: {e}); start one with `ray start "
                               f"--head --port {port}` or give its address") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


#: RAY_AUTH_MODE as it was before this process's local runtime set it (ray.init leaves it
#: set after ray.shutdown, and a later join would send a token the cluster may not expect)
_AUTH_MODE: list[str | None] = []


def init_ray(address: str | None, *, num_cpus: int | None = None,
             store_bytes: int | None = None) -> bool:
    """Start Ray in this process unless it is running; returns whether it started it (stop
    it with :func:`shutdown_ray`).

    ``address`` ``None``: a runtime of its own on this machine (``address="local"``; a plain
    ``ray.init`` would join one that ``ray start`` runs or ``RAY_ADDRESS`` names) with
    ``num_cpus`` CPUs and an object store of ``store_bytes`` (at least Ray's minimum).
    Otherwise: join the cluster at ``address``.

    Raises:
        DistributedError: Ray could not start or join (naming the flag).
    """
    ray = import_ray("--workers" if address is None else "--ray-address")
    if ray.is_initialized():
        return False
    # a runtime of its own on this machine: Ray's set-up warnings (e.g. about an auth token
    # it does not need) are noise in the search's output; joining a cluster, they may matter
    kwargs: dict[str, Any] = {"include_dashboard": False,
                              "logging_level": logging.ERROR if address is None
                              else logging.WARNING,
                              "log_to_driver": True}
    if address is None:
        kwargs.update(address="local", num_cpus=num_cpus)
        if store_bytes is not None:
            kwargs["object_store_memory"] = max(80 * 2**20, int(store_bytes))
        _AUTH_MODE[:] = [os.environ.get("RAY_AUTH_MODE")]
    else:
        _probe(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as e:  # noqa: BLE001 - ray raises ConnectionError and others
        if address is None:
            _restore_auth_mode()
            raise DistributedError(f"--workers: could not start a local Ray runtime "
                                   f"({_first_line(e)})") from None
        hint = ""
        if address != "auto" and os.environ.get("RAY_AUTH_MODE") != "token":
            # something answered at the address (the probe) but the join failed
            hint = ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token "
                    "here, with its token in RAY_AUTH_TOKEN or ~/.ray/auth_token")
        raise DistributedError(f"--ray-address {address}: could not join the Ray cluster "
                               f"({_first_line(e)}){hint}") from None
    return True


def _restore_auth_mode() -> None:
    if _AUTH_MODE:
        old = _AUTH_MODE.pop()
        if old is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old


def shutdown_ray() -> None:
    """Stop (or leave) Ray in this process, and undo what starting a local runtime set in
    the environment."""
    import ray

    ray.shutdown()
    _restore_auth_mode()


def check_cluster(address: str) -> None:
    """Join the cluster at ``address`` and leave it again: a wrong address or a missing
    token is reported before a search does any work.

    Raises:
        DistributedError: as :func:`init_ray`.
    """
    if init_ray(address):
        shutdown_ray()


def _tensor_bytes(*objs: Any) -> int:
    total = 0
    for o in objs:
        if isinstance(o, torch.Tensor):
            total += o.numel() * o.element_size()
        elif isinstance(o, torch.nn.Module):
            total += sum(t.numel() * t.element_size()
                         for t in (*o.parameters(), *o.buffers()))
        elif isinstance(o, (list, tuple)):
            total += _tensor_bytes(*o)
    return total


def _cpu(batches: Iterable[Any]) -> list[Any]:
    return [tuple(t.cpu() for t in b) if isinstance(b, (tuple, list)) else b.cpu()
            for b in batches]


class _Evaluator:
    """One worker (a Ray actor): a supernet copy and the data it is evaluated on."""

    def __init__(self, net: torch.nn.Module, val: tuple[torch.Tensor, torch.Tensor],
                 calib: list[Any], bn_batches: int, threads: int, device: str,
                 batch_size: int) -> None:
        from nas.data import TensorLoader

        torch.set_num_threads(threads)
        self.net = net.to(device).eval()
        self.val = TensorLoader(*val, batch_size, device=device)
        self.calib = calib
        self.bn_batches = bn_batches

    def evaluate(self, config: Config) -> tuple[float, float]:
        """(top-1 accuracy %, seconds) of ``config``, BN recalibrated first."""
        from nas.training import evaluate_config

        t = time.perf_counter()
        top1 = evaluate_config(self.net, config, self.val, self.calib, self.bn_batches)["top1"]
        return float(top1), time.perf_counter() - t


class RayEvaluatorPool:
    """``workers`` Ray actors that evaluate configs of ``net`` in parallel.

    Args:
        net: the supernet (copied to each worker; left untouched here).
        val: validation images and labels.
        calib: the BN-recalibration batches, the same for every config.
        bn_batches: how many of them each evaluation uses (0: no recalibration).
        workers: actors to start (>= 1).
        threads: torch threads per worker (and the CPUs each asks Ray for).
        device: ``cpu`` or ``cuda[:N]`` (a worker on cuda asks Ray for one GPU and uses the
            one it is given; ``N`` is not used).
        address: a running Ray cluster to join (``auto`` or ``host:port``); ``None`` starts
            a runtime of its own on this machine for the pool's lifetime (not one that
            ``ray start`` or ``$RAY_ADDRESS`` offers). Where Ray is already initialised in
            this process, the pool uses it as it is and leaves it running.
        batch_size: validation batch size.
        start_timeout: seconds the workers get to start (load the supernet) before the
            pool gives up.

    Use as a context manager, or call :meth:`close`. One process can start local pools one
    after another, and join a cluster any number of times, but with Ray 2.60 a pool that
    joins a cluster after an earlier pool in the same process started and stopped a local
    runtime gets its workers cancelled (a :class:`DistributedError` saying a worker could
    not start; restoring ``RAY_AUTH_MODE`` does not prevent it); ``nas search`` runs one pool
    per process.
    """

    def __init__(self, net: torch.nn.Module, val: tuple[torch.Tensor, torch.Tensor],
                 calib: Sequence[Any], *, bn_batches: int, workers: int, threads: int = 1,
                 device: str = "cpu", address: str | None = None,
                 batch_size: int = 256, start_timeout: float = 300.0) -> None:
        from nas.supernet.ops import clear_weight_caches

        ray = import_ray("--workers" if address is None else "--ray-address")
        self._ray = ray
        self._started = False
        self.workers: list[Any] = []
        cpu_net = net if next(net.parameters()).device.type == "cpu" else \
            copy.deepcopy(net).cpu()
        clear_weight_caches(cpu_net)  # eval-time caches: useless on a worker, and large
        val = (val[0].cpu(), val[1].cpu())
        calib = _cpu(calib)
        where = f"the Ray cluster at {address}" if address else "the local Ray runtime"
        dev = "cuda" if str(device).startswith("cuda") else "cpu"
        if not ray.is_initialized():
            # each put object is stored once: room for the payload and some slack rather
            # than Ray's default of 30% of the machine's memory
            store = 2 * _tensor_bytes(cpu_net, val, calib) + _STORE_SLACK
            self._started = init_ray(address, num_cpus=workers * threads, store_bytes=store)
        try:
            have = ray.cluster_resources()
            for res, need, flags in (("CPU", workers * threads, "--workers x --threads"),
                                     ("GPU", workers if dev == "cuda" else 0,
                                      "--workers on --device cuda")):
                if need > have.get(res, 0):
                    raise DistributedError(
                        f"{flags}: {workers} worker(s) need {need} {res}s; {where} has "
                        f"{have.get(res, 0):g}")
            from ray.util import ActorPool

            actor = ray.remote(num_cpus=threads, num_gpus=1 if dev == "cuda" else 0)(_Evaluator)
            refs = [ray.put(o) for o in (cpu_net, val, calib)]
            self.workers = [actor.remote(*refs, bn_batches, threads, dev, batch_size)
                            for _ in range(workers)]
            try:
                ray.get([w.__ray_ready__.remote() for w in self.workers],
                        timeout=start_timeout)
            except ray.exceptions.GetTimeoutError:
                raise DistributedError(
                    f"--workers: the {workers} Ray worker(s) did not start within "
                    f"{start_timeout:g} s on {where} (busy, or short of memory?)") from None
            except ray.exceptions.RayError as e:
                raise DistributedError(f"--workers: a Ray worker could not start on "
                                       f"{where} ({_first_line(e)})") from None
            self._pool = ActorPool(self.workers)
        except BaseException:
            self.close()
            raise
        log.info("%d Ray workers (%d thread(s) each) on %s", workers, threads, where)

    def evaluate(self, configs: Sequence[Config]) -> list[tuple[float, float]]:
        """(top-1 %, seconds) per config, in the order of ``configs``.

        Raises:
            DistributedError: a worker died or an evaluation raised in one.
        """
        return list(self.evaluate_iter(configs))

    def evaluate_iter(self, configs: Sequence[Config]) -> Iterator[tuple[float, float]]:
        """As :meth:`evaluate`, yielding each result as soon as it and every one before it
        are in (all configs are submitted at once): a caller that records results as they
        come loses only the unfinished ones when stopped."""
        ray = self._ray
        results = self._pool.map(lambda a, c: a.evaluate.remote(c), list(configs))
        while True:
            try:
                r = next(results)
            except StopIteration:
                return
            except ray.exceptions.RayActorError as e:
                raise DistributedError(f"a Ray worker stopped during the evaluations "
                                       f"({_first_line(e)}); re-run the same command to "
                                       "resume the search") from None
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise DistributedError(f"an evaluation failed on a Ray worker: "
                                       f"{_first_line(cause)}") from None
            yield r

    def close(self) -> None:
        """Stop the workers (and the local Ray runtime this pool started)."""
        for w in getattr(self, "workers", []):
            try:
                self._ray.kill(w)
            except Exception:  # noqa: BLE001, S110 - already gone
                pass
        self.workers = []
        if self._started:
            shutdown_ray()
            self._started = False

    def __enter__(self) -> RayEvaluatorPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

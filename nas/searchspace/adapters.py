"""Bridges from a :class:`Space` to optuna and pymoo.

Both go through the space's one encoding (``encode``/``decode``/``repair``); optuna and pymoo
are imported only when an adapter is used.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.searchspace.dims import IntRange, value_key
from nas.searchspace.space import INACTIVE, Config, Space

if TYPE_CHECKING:  # pragma: no cover
    import optuna

CONFIG_ATTR = "nas_config"
REPAIRED_ATTR = "nas_repaired"


def _distribution(dim: Any) -> Any:
    """The optuna distribution :func:`suggest_config` suggests ``dim`` from."""
    import optuna

    spec = dim.spec
    if isinstance(spec, IntRange):
        return optuna.distributions.IntDistribution(spec.low, spec.high, step=spec.step)
    return optuna.distributions.CategoricalDistribution(list(spec.values))


def trial_params(space: Space, config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, distributions)`` of ``config`` as :func:`suggest_config` names them (the
    dimensions that exist in it, by dotted path): what ``optuna.trial.create_trial`` needs to
    tell a study a config it did not suggest (a repaired one, or one known from elsewhere)."""
    cfg = space.config(config)
    params, dists = {}, {}
    for d, dim in enumerate(space._dims):
        i = cfg._idx[d]
        if i == INACTIVE:
            continue
        params[dim.path] = dim.values[i]
        dists[dim.path] = _distribution(dim)
    return params, dists


def suggest_config(trial: optuna.trial.BaseTrial, space: Space) -> Config:
    """Suggest a config inside an optuna trial, define-by-run.

    Only dimensions that exist given the values suggested so far are suggested (a block's
    kernel is only asked for when the stage is deep enough), under their dotted paths. Integer
    ranges use ``suggest_int``; choices use ``suggest_categorical``. If the suggested values
    break a constraint, the config is repaired to the nearest valid one (see
    :meth:`Space.repair`) and the trial's user attribute ``nas_repaired`` is set: its params
    are then not the config evaluated (the searchers also add the repaired config as a trial
    of its own, :func:`trial_params`). The final config is stored as JSON in the user
    attribute ``nas_config``.
    """
    idx = [INACTIVE] * len(space)
    for d, dim in enumerate(space._dims):
        if not space._active(idx, d):
            continue
        spec = dim.spec
        if isinstance(spec, IntRange):
            v = trial.suggest_int(dim.path, spec.low, spec.high, step=spec.step)
        else:
            v = trial.suggest_categorical(dim.path, list(spec.values))
        idx[d] = dim.keys[value_key(v)]
    vec = np.array(idx, dtype=float)
    try:
        cfg = space.decode(vec)
        repaired = False
    except Exception:
        cfg = space.repair(np.where(vec < 0, np.nan, vec))
        repaired = True
    if hasattr(trial, "set_user_attr"):
        trial.set_user_attr(CONFIG_ATTR, cfg.to_json())
        if repaired:
            trial.set_user_attr(REPAIRED_ATTR, True)
    return cfg


def config_from_trial(trial: Any, space: Space) -> Config:
    """The config a finished trial evaluated (from its ``nas_config`` attribute, else its
    params)."""
    raw = trial.user_attrs.get(CONFIG_ATTR) if hasattr(trial, "user_attrs") else None
    if raw is not None:
        return space.config(json.loads(raw))
    return space.config(dict(trial.params))


def pymoo_bounds(space: Space) -> tuple[np.ndarray, np.ndarray]:
    """Integer variable bounds for pymoo: ``xl = 0``, ``xu = n_values - 1`` per dimension."""
    return space.bounds()


def pymoo_repair(space: Space) -> Any:
    """A ``pymoo.core.repair.Repair`` mapping every row to the nearest valid config.

    Entries of dimensions that exist are set to the repaired config's encoding; entries of
    absent dimensions keep their (rounded, clipped) value, so genes of a block that a shallower
    depth switched off survive for later generations.
    """
    from pymoo.core.repair import Repair

    lo, hi = space.bounds()

    class SpaceRepair(Repair):
        def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
            X = np.asarray(X, dtype=float)
            out = np.clip(np.rint(np.nan_to_num(X, nan=0.0)), lo, hi)
            for r in range(out.shape[0]):
                enc = space.encode(space.repair(X[r]))
                present = enc >= 0
                out[r, present] = enc[present]
            return out

    return SpaceRepair()


def pymoo_problem(space: Space, n_obj: int, evaluate: Any = None, n_ieq_constr: int = 0) -> Any:
    """A pymoo ``Problem`` over the space's encoding (integer variables, bounds from
    :func:`pymoo_bounds`). ``evaluate(configs) -> array (n, n_obj)`` is optional: ask/tell use
    needs none."""
    from pymoo.core.problem import Problem

    lo, hi = space.bounds()

    class SpaceProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(space), n_obj=n_obj, n_ieq_constr=n_ieq_constr,
                             xl=lo, xu=hi, vtype=int)

        def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kw: Any) -> None:
            if evaluate is None:
                raise NotImplementedError("this problem is for ask/tell use")
            configs = [space.repair(x) for x in X]
            out["F"] = np.asarray(evaluate(configs), dtype=float)

    return SpaceProblem()

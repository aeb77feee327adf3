"""optuna samplers as searchers: ``optuna-tpe`` and ``optuna-nsga2``.

The study lives in optuna storage: in-memory by default, or any storage URL (``storage``
option), e.g. ``sqlite:///RUN_DIR/optuna.db``, so a search can resume and several workers
can share one study (``study_name``).

A suggestion that broke a constraint is repaired before it is evaluated
(:func:`~nas.searchspace.adapters.suggest_config`): its trial is told the repaired config's
values (the objective as the sampler sees it, repair included), and the repaired config is
also added as a completed trial of its own params, so the study holds the point that was
evaluated. Configs told from elsewhere (a resumed search's history) are added the same way,
once per config: ``optuna-tpe`` resumed with in-memory storage starts from what it knew.
``optuna-nsga2`` breeds each generation from the trials its sampler made (they carry its
generation number), so added trials do not enter its populations: it resumes from random
unless the study is in persistent ``storage``.

The study's name is ``nas-search-seed<SEED>`` unless the ``study_name`` option is given:
searchers of different seeds in one storage (e.g. the seeds of a replay benchmark) each get
their own study, and a search resumed with the same seed finds its own. An explicit
``study_name`` is used as given, whatever the seed (to share one study between workers).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from nas.search.base import Searcher, register_searcher
from nas.searchspace import Config
from nas.searchspace.adapters import CONFIG_ATTR, REPAIRED_ATTR, suggest_config, trial_params


class OptunaSearcher(Searcher):
    defaults: dict[str, Any] = {"storage": None, "study_name": "nas-search", "batch": 1}

    def _sampler(self, seed: int) -> Any:
        raise NotImplementedError

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # the default name is per seed, so seeds sharing a storage do not share a study
        if "study_name" not in kwargs:
            self.options["study_name"] = f"{self.defaults['study_name']}-seed{self.seed}"
        self.study = optuna.create_study(
            storage=self.options["storage"], study_name=self.options["study_name"],
            load_if_exists=True, sampler=self._sampler(self.seed),
            directions=["maximize" if o.direction == "max" else "minimize"
                        for o in self.objectives])
        self._pending: dict[Config, list[Any]] = {}
        # the configs the study has completed trials of (a persistent storage's included)
        self._in_study: set[Config] = set()
        for t in self.study.get_trials(deepcopy=False,
                                       states=(optuna.trial.TrialState.COMPLETE,)):
            raw = t.user_attrs.get(CONFIG_ATTR)
            try:
                self._in_study.add(self.space.config(json.loads(raw)) if raw is not None
                                   else self.space.config(dict(t.params)))
            except Exception:  # noqa: BLE001 - a trial of another space: not ours to know
                continue

    def ask(self) -> list[Config]:
        out = []
        for _ in range(int(self.options["batch"])):
            trial = self.study.ask()
            cfg = suggest_config(trial, self.space)
            self._pending.setdefault(cfg, []).append(trial)
            out.append(cfg)
        return out

    def _tell(self, configs: list[Config], F: np.ndarray) -> None:
        import optuna

        signs = np.array([o.sign for o in self.objectives])
        for c, f in zip(configs, F):
            vals = (f * signs).tolist()
            values = vals[0] if len(vals) == 1 else vals
            trials = self._pending.get(c)
            trial = trials.pop(0) if trials else None
            if trial is not None:
                # a repaired suggestion too: the value of suggesting there, repair included
                # (marked failed instead, TPE kept suggesting the broken region: each
                # suggestion repaired to a config already known, and the search stopped
                # idle long before its budget)
                self.study.tell(trial, values)
                if not trial.user_attrs.get(REPAIRED_ATTR):
                    self._in_study.add(c)
                    continue
            if c in self._in_study:
                continue  # the study has this config's own params and values already
            params, dists = trial_params(self.space, c)
            self.study.add_trial(optuna.trial.create_trial(
                params=params, distributions=dists,
                **({"value": values} if len(vals) == 1 else {"values": values}),
                user_attrs={CONFIG_ATTR: c.to_json()}))
            self._in_study.add(c)


@register_searcher
class OptunaTPE(OptunaSearcher):
    name = "optuna-tpe"

    def _sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.TPESampler(seed=seed)


@register_searcher
class OptunaNSGA2(OptunaSearcher):
    name = "optuna-nsga2"

    def _sampler(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.NSGAIISampler(seed=seed)

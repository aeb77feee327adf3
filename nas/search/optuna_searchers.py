"""optuna samplers as searchers: ``optuna-tpe`` and ``optuna-nsga2``.

The study lives in optuna storage: in-memory by default, or any storage URL (``storage``
option), e.g. ``sqlite:///RUN_DIR/optuna.db``, so a search can resume and several workers
can share one study (``study_name``).

The study's name is ``nas-search-seed<SEED>`` unless the ``study_name`` option is given:
searchers of different seeds in one storage (e.g. the seeds of a replay benchmark) each get
their own study, and a search resumed with the same seed finds its own. An explicit
``study_name`` is used as given, whatever the seed (to share one study between workers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.search.base import Searcher, register_searcher
from nas.searchspace import Config
from nas.searchspace.adapters import suggest_config


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

    def ask(self) -> list[Config]:
        out = []
        for _ in range(int(self.options["batch"])):
            trial = self.study.ask()
            cfg = suggest_config(trial, self.space)
            self._pending.setdefault(cfg, []).append(trial)
            out.append(cfg)
        return out

    def _tell(self, configs: list[Config], F: np.ndarray) -> None:
        signs = np.array([o.sign for o in self.objectives])
        for c, f in zip(configs, F):
            trials = self._pending.get(c)
            if not trials:
                continue  # told from elsewhere (a resumed search): nothing pending here
            trial = trials.pop(0)
            vals = (f * signs).tolist()
            self.study.tell(trial, vals[0] if len(vals) == 1 else vals)


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

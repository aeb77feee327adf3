"""Searchers (ask/tell, registered by name) and the search loop.

Registered: ``random``, ``evolution`` (regularized evolution), ``nsga2``, ``agemoea``,
``unsga3``, ``moead`` (pymoo), ``optuna-tpe``, ``optuna-nsga2`` (optuna storage),
``linas`` (predictor-in-the-loop).
"""

from nas.search.base import (
    Objective,
    Searcher,
    SearchResult,
    hypervolume,
    list_searchers,
    make_searcher,
    pareto_mask,
    register_searcher,
    run_search,
    to_min,
)

__all__ = ["Objective", "SearchResult", "Searcher", "hypervolume", "list_searchers",
           "make_searcher", "pareto_mask", "register_searcher", "run_search", "to_min"]

"""The search-space DSL: dimensions, groups, constraints, spaces and configs.

Pure Python + numpy (no torch). See :class:`Space` for the verbs.
"""

from nas.errors import ConfigError, SpaceDefinitionError
from nas.searchspace.constraints import (
    Compare,
    Constraint,
    Divides,
    Forbid,
    Predicate,
    register_predicate,
)
from nas.searchspace.dims import Choice, Condition, Group, IntRange
from nas.searchspace.io import load_config, load_space_file, save_config, save_space
from nas.searchspace.registry import (
    get_space,
    list_spaces,
    load_space,
    register_arch_format,
    register_space,
)
from nas.searchspace.space import INACTIVE, Config, Space, as_rng

__all__ = [
    "INACTIVE", "Choice", "Compare", "Condition", "Config", "ConfigError", "Constraint",
    "Divides", "Forbid", "Group", "IntRange", "Predicate", "Space", "SpaceDefinitionError",
    "as_rng", "get_space", "list_spaces",
    "load_config", "load_space", "load_space_file", "register_arch_format",
    "register_predicate", "register_space", "save_config", "save_space",
]

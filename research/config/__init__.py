"""Stage configs: one dataclass per stage (``stages``), read from YAML and the command line (``loading``).

The package's interface: ``from research.config import TrainConfig, load_config`` and the rest below.
"""

from research.config.loading import (
    OVERRIDE_TOKEN,
    OVERRIDES_DEST,
    SECTIONS,
    ConfigParser,
    add_config_arguments,
    build_config,
    config_from_args,
    deep_merge,
    load_config,
    opt,
    overrides_as_delta,
    parse_override,
    parse_yaml,
    read_yaml,
    to_flat_dict,
    to_yaml,
)
from research.config.stages import (
    TTA_DEFAULT_MODES,
    CVConfig,
    EvalConfig,
    ExtractConfig,
    LaunchConfig,
    SearchConfig,
    TrainConfig,
    add_search_arguments,
    search_config_from_args,
)

__all__ = [
    "OVERRIDES_DEST",
    "OVERRIDE_TOKEN",
    "SECTIONS",
    "TTA_DEFAULT_MODES",
    "CVConfig",
    "ConfigParser",
    "EvalConfig",
    "ExtractConfig",
    "LaunchConfig",
    "SearchConfig",
    "TrainConfig",
    "add_config_arguments",
    "add_search_arguments",
    "build_config",
    "config_from_args",
    "deep_merge",
    "load_config",
    "opt",
    "overrides_as_delta",
    "parse_override",
    "parse_yaml",
    "read_yaml",
    "search_config_from_args",
    "to_flat_dict",
    "to_yaml",
]

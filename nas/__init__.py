"""nas: neural architecture search and weight-sharing supernets for PyTorch."""

from nas.errors import ConfigError, NasError, SpaceDefinitionError, UsageError

__version__ = "0.1.0"

__all__ = ["ConfigError", "NasError", "SpaceDefinitionError", "UsageError", "__version__"]

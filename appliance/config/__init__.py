"""Station configuration: a typed schema over ``config/station.yaml``.

Load with :func:`load_config`; a bad file raises :class:`ConfigError`
listing every problem at once, each with file:line, key path and what was
expected (Mopidy's schema style, with line numbers from PyYAML's marks).
"""

from appliance.config.loader import ConfigError, ConfigProblem, load_config, load_layers
from appliance.config.schema import StationConfig

__all__ = ["ConfigError", "ConfigProblem", "StationConfig", "load_config", "load_layers"]

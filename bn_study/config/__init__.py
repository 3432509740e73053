"""The config: its schema (registered in Hydra's ConfigStore on import), its resolvers, its value rules, where it lives."""

from bn_study.config import resolvers as _resolvers  # noqa: F401  (registers ${linear_scaling:...})
from bn_study.config import schema as _schema  # noqa: F401  (registers the structured configs)

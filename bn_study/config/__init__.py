"""The config: its schema (registered in Hydra's ConfigStore on import), its value rules, where it lives."""

from bn_study.config import schema as _schema  # noqa: F401  (registers the structured configs)

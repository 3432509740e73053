"""bn_study's Hydra sweepers, found by Hydra's plugin discovery in the ``hydra_plugins`` namespace."""

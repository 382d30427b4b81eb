"""Training and evaluation of SAMOS models (torch): config, loop, metrics, ``samos train`` / ``samos eval``.

Importing this package does not import torch; ``samos.train.loop`` (the recipe and one step; with
``epoch``, ``feature_cache`` and ``artefacts``) and ``samos.train.evaluate`` do.
"""

"""Training and evaluation of SAMOS models (torch): config, loop, metrics, ``samos train`` / ``samos eval``.

Importing this package does not import torch; ``samos.train.loop`` and ``samos.train.evaluate`` do.
"""

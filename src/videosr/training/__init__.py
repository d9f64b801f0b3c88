"""Training (``videosr train``).

* :mod:`videosr.training.loop`: :func:`~videosr.training.loop.train`, the training loop, and its validation.
* :mod:`videosr.training.config`: the TOML configuration as a typed dataclass tree
  (:func:`~videosr.training.config.load_config`, :class:`~videosr.training.config.TrainConfig`).
* :mod:`videosr.training.data`: (LR, HR) clip pairs made on the fly from the training set.
* :mod:`videosr.training.degradations`: the training degradations (realistic, compression in the loop); the
  evaluation protocol's BI/BD are in :mod:`videosr.eval.degrade`.

Nothing is imported here (:mod:`videosr.checkpoint` imports the config alone, without the loop): import the
module you need.
"""

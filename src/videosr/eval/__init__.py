"""The SR evaluation protocol (``videosr eval``).

* :mod:`videosr.eval.protocol`: :func:`~videosr.eval.protocol.evaluate` (clips, LR pairing or making,
  inference, metrics), :func:`~videosr.eval.protocol.to_json`.
* :mod:`videosr.eval.degrade`: how the protocol makes LR from GT (BI, BD, 8-bit rounding, seeded noise, a
  codec round trip: :class:`~videosr.eval.degrade.LRRecipe`, :func:`~videosr.eval.degrade.make_lr`).
* :mod:`videosr.eval.metrics`: PSNR / SSIM as the MATLAB reference, tOF, warping error.
* :mod:`videosr.eval.report`: the text table, comparison crops and per-frame PSNR plots.

Nothing is imported here: import the module you need.
"""

"""Procedural chairs: the training and evaluation data of the chair model.

No dataset is downloaded: :mod:`.chairs` builds parametric chairs (signed distance + albedo) from
a seed, :mod:`.raytrace` renders them with simple studio shading. Seed ranges are fixed here so that
training, evaluation and the shipped examples never overlap.
"""

TRAIN_SEEDS = range(100_000)
"""seeds the model is trained on."""
EVAL_SEEDS = range(500_000, 501_000)
"""held-out seeds for evaluation (never trained on)."""
EXTRA_SEEDS = range(700_000, 800_000)
"""seeds of the families added later (backless stools, rocking and cantilever chairs), so that every
other seed keeps its chair."""
EXAMPLE_SEEDS = range(900_000, 900_100)
"""seeds reserved for the example images in ``examples/`` and documentation."""

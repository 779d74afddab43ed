"""A second, independent validation source: chairs from Infinigen's procedural seating factories.

Infinigen (PyPI ``infinigen`` 1.15.5, BSD-3-Clause) needs ``bpy`` 4.2.0 and older NumPy, so it
lives in its own environment (``training/infinigen/setup.sh`` -> ``runs/infinigen-venv``); it is
training tooling, never shipped and never needed by ``make test``. ``make_chairs.py`` runs inside
that environment and writes the same ``cases.json`` as ``python -m training real-build``;
``python -m training real-evaluate --cases runs/infinigen/cases.json`` scores it.
``make_training.py`` (same environment) turns Infinigen chairs of other seeds into generator
training data, which :mod:`.dataset` reads for ``python -m training train-generator --infinigen``.
:mod:`.convert` (NumPy only) is what both environments share.
"""

"""What builds the shipped model and measures it; not part of the extension.

Procedural chairs (``training.data``), generator and encoder training, the evaluation on held-out
chairs, the generator's silhouette ceiling and the speed benchmark. Run from the repository root:

    python -m training --help
"""

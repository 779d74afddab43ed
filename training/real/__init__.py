"""A real validation set: human-made chairs from Sweet Home 3D's default catalogue, rendered in Blender.

``python -m training real-build`` converts and renders them (training.real.build),
``python -m training real-evaluate`` scores the shipped pipeline on them (training.real.evaluate).
"""

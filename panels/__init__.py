"""Blender UI: the Scene settings, the add-on preferences and the 3D View sidebar panel."""

"""The part material's shader nodes: the palette mix of the recolorable color parts (the formula of
core.parts), one swatch RGB node per part, and reading or baking the mix back into the mesh."""

from __future__ import annotations

import math

import bpy

from . import LazyModule
from .scene_data import (COLOR_ATTRIBUTE, PART_ATTRIBUTE, PART_EPS, RESIDUAL_ATTRIBUTE, SWATCH_NODE, linear_to_srgb,
                         srgb_to_linear)

np = LazyModule("numpy")  # not imported at registration: the extension loads before the dependencies are installed


SWATCH_GROUP = "SFI Swatch to Part Value"
"""node group: swatch color (scene linear) -> pre-sigmoid part value (inverse widened sigmoid of sRGB)."""
SIGMOID_GROUP = "SFI Part Mix to Color"
"""node group: pre-sigmoid mix -> scene-linear color (widened sigmoid, clamp, sRGB decoding)."""


class _Math:
    """Builds chains of scalar Math nodes in a node tree: each call returns the new node's output."""

    def __init__(self, tree):
        self.tree = tree

    def op(self, operation: str, a, b=None, clamp: bool = False):
        node = self.tree.nodes.new("ShaderNodeMath")
        node.operation = operation
        node.use_clamp = clamp
        for socket, value in ((node.inputs[0], a), (node.inputs[1], b)):
            if value is None:
                continue
            if isinstance(value, (int, float)):
                socket.default_value = float(value)
            else:
                self.tree.links.new(value, socket)
        return node.outputs[0]

    def select(self, condition, if_true, if_false):
        """``if_false + condition * (if_true - if_false)`` for a 0/1 ``condition``."""
        return self.op("ADD", if_false, self.op("MULTIPLY", condition, self.op("SUBTRACT", if_true, if_false)))


def _per_channel_group(name: str, in_type: str, out_type: str, channel) -> object:
    """A node group that applies ``channel(m, socket) -> socket`` to each of x/y/z (r/g/b)."""
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == "ShaderNodeTree":
        return group
    group = bpy.data.node_groups.new(name, "ShaderNodeTree")
    group.interface.new_socket("In", in_out="INPUT", socket_type=in_type)
    group.interface.new_socket("Out", in_out="OUTPUT", socket_type=out_type)
    nodes, links = group.nodes, group.links
    inp, out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    split = nodes.new("ShaderNodeSeparateXYZ")
    join = nodes.new("ShaderNodeCombineXYZ")
    links.new(inp.outputs[0], split.inputs[0])
    m = _Math(group)
    for i in range(3):
        links.new(channel(m, split.outputs[i]), join.inputs[i])
    links.new(join.outputs[0], out.inputs[0])
    return group


def _swatch_channel(m: _Math, x):
    """linear -> sRGB -> pre-sigmoid value ``log(q) - log(1 - q)``, ``q = (s + eps) / (1 + 2 eps)``."""
    x = m.op("MAXIMUM", x, 0.0)
    low = m.op("MULTIPLY", x, 12.92)
    high = m.op("SUBTRACT", m.op("MULTIPLY", m.op("POWER", x, 1 / 2.4), 1.055), 0.055)
    s = m.op("MINIMUM", m.select(m.op("GREATER_THAN", x, 0.0031308), high, low), 1.0)
    q = m.op("DIVIDE", m.op("ADD", s, PART_EPS), 1 + 2 * PART_EPS)
    return m.op("SUBTRACT", m.op("LOGARITHM", q, math.e), m.op("LOGARITHM", m.op("SUBTRACT", 1.0, q), math.e))


def _sigmoid_channel(m: _Math, z):
    """pre-sigmoid -> sRGB ``clamp(sigmoid(z) (1 + 2 eps) - eps)`` -> scene linear."""
    e = m.op("EXPONENT", m.op("MULTIPLY", z, -1.0))
    s = m.op("SUBTRACT", m.op("DIVIDE", 1 + 2 * PART_EPS, m.op("ADD", e, 1.0)), PART_EPS, clamp=True)
    low = m.op("DIVIDE", s, 12.92)
    high = m.op("POWER", m.op("DIVIDE", m.op("ADD", s, 0.055), 1.055), 2.4)
    return m.select(m.op("GREATER_THAN", s, 0.04045), high, low)


PART_LABELS = {"seat": "Seat", "back": "Back", "arms": "Arms", "frame": "Legs/Frame"}
"""what a part group is called on its swatch (the model's slot groups: ``generator.slot_groups``)."""


def color_name(srgb) -> str:
    """A plain name of an sRGB color in [0, 1]: 'black', 'grey', 'white', 'brown', 'orange', 'blue', ..."""
    import colorsys

    hue, sat, val = colorsys.rgb_to_hsv(*(min(1.0, max(0.0, float(c))) for c in srgb[:3]))
    if val < 0.18:
        return "black"
    if sat < 0.2:
        return "white" if val > 0.85 else "light grey" if val > 0.6 else "grey" if val > 0.35 else "dark grey"
    hue *= 360.0
    if (hue < 50.0 or hue >= 345.0) and val < 0.6:  # dark reds and oranges: the browns of wood and leather
        return "brown" if val > 0.3 else "dark brown"
    for limit, name in ((15, "red"), (40, "orange"), (65, "yellow"), (165, "green"), (195, "cyan"), (255, "blue"),
                        (290, "purple"), (340, "pink"), (361, "red")):
        if hue < limit:
            return name
    return "red"


def swatch_labels(part_names, part_colors) -> list[str]:
    """The swatches' labels: the part's name ('Seat', 'Legs/Frame'); where several parts share a name,
    each says its color ('Legs/Frame (orange)', 'Legs/Frame (black)') instead of a number. Without
    names: 'Part 1', 'Part 2', ..."""
    colors = list(np.asarray(part_colors, dtype=np.float64))
    if len(part_names) != len(colors):
        return [f"Part {p + 1}" for p in range(len(colors))]
    bases = []
    for name in part_names:
        head, _, tail = name.rpartition(" ")
        base = head if head and tail.isdigit() else name  # 'frame 2' (core.parts) -> 'frame'
        bases.append(PART_LABELS.get(base.lower(), base.capitalize()))
    labels = [f"{b} ({color_name(c)})" if bases.count(b) > 1 else b for b, c in zip(bases, colors)]
    return [f"{label} {labels[:p].count(label) + 1}" if label in labels[:p] else label
            for p, label in enumerate(labels)]


def add_part_mix(tree, part_colors: np.ndarray, location=(0.0, 0.0), part_names: tuple[str, ...] = ()):
    """Nodes computing the parts' mix in ``tree``; returns the scene-linear color output socket. Each swatch
    is labelled by :func:`swatch_labels` ('Seat', 'Legs/Frame (orange)'; 'Part N' without names).

    ``color = srgb_decode(clamp(widened_sigmoid(sum_p part_p * value(swatch_p) + part_residual)))``
    (core.parts): with the swatches as built it reproduces the "Col" attribute (up to its 8 bits).
    """
    nodes, links = tree.nodes, tree.links
    swatch_group = _per_channel_group(SWATCH_GROUP, "NodeSocketColor", "NodeSocketVector", _swatch_channel)
    sigmoid_group = _per_channel_group(SIGMOID_GROUP, "NodeSocketVector", "NodeSocketColor", _sigmoid_channel)
    x0, y0 = location
    residual = nodes.new("ShaderNodeAttribute")
    residual.attribute_type = "GEOMETRY"
    residual.attribute_name = RESIDUAL_ATTRIBUTE
    residual.location = (x0 - 900.0, y0 + 200.0)
    total = residual.outputs["Vector"]
    labels = swatch_labels(part_names, part_colors)
    for p, srgb in enumerate(np.asarray(part_colors, dtype=np.float64)):
        y = y0 - 200.0 * p
        rgb = nodes.new("ShaderNodeRGB")
        rgb.name = SWATCH_NODE.format(p)
        rgb.label = labels[p]
        rgb.location = (x0 - 1200.0, y)
        lin = srgb_to_linear(srgb)
        rgb.outputs[0].default_value = (float(lin[0]), float(lin[1]), float(lin[2]), 1.0)
        value = nodes.new("ShaderNodeGroup")
        value.node_tree = swatch_group
        value.location = (x0 - 1000.0, y)
        links.new(rgb.outputs[0], value.inputs[0])
        weight = nodes.new("ShaderNodeAttribute")
        weight.attribute_type = "GEOMETRY"
        weight.attribute_name = PART_ATTRIBUTE.format(p)
        weight.location = (x0 - 1000.0, y - 100.0)
        scaled = nodes.new("ShaderNodeVectorMath")
        scaled.operation = "SCALE"
        scaled.location = (x0 - 800.0, y)
        links.new(value.outputs[0], scaled.inputs[0])
        links.new(weight.outputs["Fac"], scaled.inputs["Scale"])
        add = nodes.new("ShaderNodeVectorMath")
        add.operation = "ADD"
        add.location = (x0 - 600.0, y)
        links.new(total, add.inputs[0])
        links.new(scaled.outputs[0], add.inputs[1])
        total = add.outputs[0]
    color = nodes.new("ShaderNodeGroup")
    color.node_tree = sigmoid_group
    color.location = (x0 - 400.0, y0)
    links.new(total, color.inputs[0])
    return color.outputs[0]


def part_swatches(mat) -> list:
    """The swatch RGB nodes of a part material, part 0 first (empty for other materials)."""
    if mat is None or mat.node_tree is None:
        return []
    out = []
    while (node := mat.node_tree.nodes.get(SWATCH_NODE.format(len(out)))) is not None:
        out.append(node)
    return out


def part_mix_colors(mesh, mat) -> np.ndarray | None:
    """(V, 3) sRGB colors of the part material's current mix on ``mesh`` (what the shader computes), or
    None when the mesh or material has no parts."""
    swatches = part_swatches(mat)
    if not swatches or RESIDUAL_ATTRIBUTE not in mesh.attributes:
        return None
    n = len(mesh.vertices)
    residual = np.empty(3 * n, dtype=np.float32)
    mesh.attributes[RESIDUAL_ATTRIBUTE].data.foreach_get("vector", residual)
    z = residual.reshape(n, 3).astype(np.float64)
    weight = np.empty(n, dtype=np.float32)
    for p, node in enumerate(swatches):
        attr = mesh.attributes.get(PART_ATTRIBUTE.format(p))
        if attr is None:
            return None
        attr.data.foreach_get("value", weight)
        s = (linear_to_srgb(np.asarray(node.outputs[0].default_value[:3])) + PART_EPS) / (1 + 2 * PART_EPS)
        z += weight[:, None].astype(np.float64) * (np.log(s) - np.log1p(-s))
    return np.clip(1.0 / (1.0 + np.exp(-z)) * (1 + 2 * PART_EPS) - PART_EPS, 0.0, 1.0).astype(np.float32)


def bake_parts_to_col(obj) -> bool:
    """Write the current part mix of ``obj``'s material into its "Col" attribute (for export); False
    when the object has no parts."""
    mesh = obj.data
    mat = mesh.materials[0] if len(mesh.materials) else None
    colors = part_mix_colors(mesh, mat)
    if colors is None:
        return False
    attr = mesh.color_attributes.get(COLOR_ATTRIBUTE)
    if attr is None:
        attr = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
    rgba = np.ones((len(colors), 4), dtype=np.float32)
    rgba[:, :3] = colors
    attr.data.foreach_set("color_srgb", rgba.ravel())
    mesh.update()
    return True

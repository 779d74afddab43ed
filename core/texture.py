"""A colour texture baked from the photo onto a UV atlas of the mesh.

Where the recovered camera sees the surface, the texture holds the photo's own pixels (wood grain, a
weave, a print); elsewhere the field's vertex colours; across the boundary the two are blended by a
weight that fades with the view angle, with the distance to the photo's silhouette and with the depth
test's margin, so no seam shows from the camera.

Stages, all vectorized NumPy (a 35k-face chair at 1024^2 bakes in about a quarter of a second on 2 CPU
cores, where xatlas takes 26 s to unwrap it):

- :func:`atlas`: charts are the connected pieces of faces that share the axis their normal points along
  most (+-X, +-Y, +-Z); each is projected along that axis (no chart folds over itself where the faces'
  normals all lie within 55 degrees of the axis), its border vertices are split, and the charts are
  packed in shelves at one texel density for the whole mesh.
- :func:`rasterize`: every (pixel, triangle) pair whose pixel centre lies inside the triangle, with
  barycentrics; it fills the atlas (each texel's 3D point) and the camera's depth buffer.
- :func:`bake`: the photo sampled where the depth test passes, blended with the vertex colours; empty
  texels take their neighbours' colours (no dark seams when a viewer filters the texture).

UVs follow OpenGL / Blender (origin at the bottom-left); the texture's row 0 is the image's top, as in
an image file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .result import CameraInfo

PADDING = 2
"""texels between charts (each chart keeps this many around it for filtering)."""
FILL = 0.72
"""share of the atlas the charts are first sized to cover (shelf packing wastes the rest)."""
GRAZING = (0.1, 0.3)
"""the photo's weight rises from 0 to 1 as the cosine between the surface normal and the direction to the
camera goes from the first value to the second (at grazing angles a pixel smears over much surface)."""
EDGE_PX = 2.0
"""the photo's weight rises from 0 to 1 over this many photo pixels inside its silhouette (edge pixels mix
object and background)."""
DEPTH_MARGIN = 0.02
"""a texel counts as seen when it lies at most this far (canonical units, ~1.3 voxels of a 128^3 mesh), plus
the depth its surface spans within one pixel, behind the nearest surface at its pixel; its weight fades to 0
over the same distance beyond."""
DEPTH_SIDE = 512
"""longest side of the depth buffer in pixels."""


def atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = PADDING
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UV atlas of a triangle mesh: (vmap (V',) index of each new vertex's original, faces' (F, 3) int32 on
    the new vertices, uv (V', 2) float32 in [0, 1]). Vertices on chart borders are repeated, one per chart."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    n_v, n_f = len(v), len(f)
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    axis = np.abs(normal).argmax(axis=1)
    label = axis * 2 + (normal[np.arange(n_f), axis] < 0)
    # faces sharing an edge and a label are one chart
    edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    key = edges[:, 0] * n_v + edges[:, 1]
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    fa, fb = order[:-1][same] // 3, order[1:][same] // 3
    label = _smooth_labels(label, normal, fa, fb)
    keep = label[fa] == label[fb]
    graph = coo_matrix((np.ones(int(keep.sum())), (fa[keep], fb[keep])), shape=(n_f, n_f))
    n_charts, chart = connected_components(graph, directed=False)
    for _ in range(MERGE_ROUNDS):
        label = _merge_small_charts(label, chart, n_charts, normal, fa, fb)
        keep = label[fa] == label[fb]
        graph = coo_matrix((np.ones(int(keep.sum())), (fa[keep], fb[keep])), shape=(n_f, n_f))
        n_charts, chart = connected_components(graph, directed=False)
    # one vertex per (chart, original vertex)
    corner_chart = np.repeat(chart, 3)
    unique, inverse = np.unique(corner_chart * n_v + f.reshape(-1), return_inverse=True)
    vmap = unique % n_v
    new_chart = unique // n_v
    new_faces = inverse.reshape(n_f, 3).astype(np.int32)
    # each chart projected along its axis: (the next axis, the one after), mirrored for -axis charts so
    # the charts are not mirror images of the surface
    chart_label = np.zeros(n_charts, np.int64)
    chart_label[chart] = label
    lab = chart_label[new_chart]
    ax = lab // 2
    p = v[vmap]
    a = p[np.arange(len(p)), (ax + 1) % 3]
    b = p[np.arange(len(p)), (ax + 2) % 3]
    a = np.where(lab % 2 == 1, -a, a)
    lo_a = np.full(n_charts, np.inf)
    lo_b = np.full(n_charts, np.inf)
    hi_a = np.full(n_charts, -np.inf)
    hi_b = np.full(n_charts, -np.inf)
    np.minimum.at(lo_a, new_chart, a)
    np.minimum.at(lo_b, new_chart, b)
    np.maximum.at(hi_a, new_chart, a)
    np.maximum.at(hi_b, new_chart, b)
    width, height = hi_a - lo_a, hi_b - lo_b
    density = np.sqrt(FILL * size * size / max(float(((width + 1e-9) * (height + 1e-9)).sum()), 1e-12))
    for _ in range(60):
        boxes = _pack(np.ceil(width * density) + 2 * padding, np.ceil(height * density) + 2 * padding, size)
        if boxes is not None:
            break
        density *= 0.93
    else:
        raise ValueError("the mesh's charts do not fit the texture")
    x = boxes[new_chart, 0] + padding + (a - lo_a[new_chart]) * density
    y = boxes[new_chart, 1] + padding + (b - lo_b[new_chart]) * density
    uv = np.stack([x / size, 1.0 - y / size], axis=1).astype(np.float32)
    return vmap, new_faces, uv


AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
"""the six projection directions; label 2 * axis + (1 if negative)."""
TAKE_COS = 0.1
"""a face may join a neighbouring chart whose direction its normal is within ~70 degrees of (it can neither
fold over in that projection nor stretch more than ~3x)."""


def _smooth_labels(label: np.ndarray, normal: np.ndarray, fa: np.ndarray, fb: np.ndarray,
                   rounds: int = 4) -> np.ndarray:
    """Face labels after a few rounds of majority vote among edge neighbours (a bumpy surface otherwise
    splits into many small charts, and every chart border repeats its vertices): each round half the
    faces, drawn at random, take their neighbours' most common acceptable label (``TAKE_COS``)."""
    n_f = len(label)
    ok = normal @ AXES.T > TAKE_COS * np.linalg.norm(normal, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        votes = (np.bincount(fa * 6 + label[fb], minlength=6 * n_f)
                 + np.bincount(fb * 6 + label[fa], minlength=6 * n_f)).reshape(n_f, 6).astype(np.float64)
        votes[np.arange(n_f), label] += 0.5  # a tie keeps the own label
        votes[~ok] = -1.0
        label = np.where(rng.random(n_f) < 0.5, votes.argmax(axis=1), label)
    return label


MERGE_ROUNDS = 2
"""rounds of :func:`_merge_small_charts`."""
SMALL_CHART = 64
"""charts with fewer faces than this join a neighbour when they can."""


def _merge_small_charts(label: np.ndarray, chart: np.ndarray, n_charts: int, normal: np.ndarray,
                        fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Face labels with every small chart (``SMALL_CHART``) relabelled to the neighbouring direction it
    shares the longest border with, when all its faces are acceptable in that direction (``TAKE_COS``)."""
    n_f = len(label)
    ok = normal @ AXES.T > TAKE_COS * np.linalg.norm(normal, axis=1, keepdims=True)
    bad = np.bincount(np.repeat(chart, 6) * 6 + np.tile(np.arange(6), n_f), weights=(~ok).ravel(),
                      minlength=6 * n_charts).reshape(n_charts, 6)
    cross = chart[fa] != chart[fb]
    a, b = np.concatenate([fa[cross], fb[cross]]), np.concatenate([fb[cross], fa[cross]])
    border = np.bincount(chart[a] * 6 + label[b], minlength=6 * n_charts).reshape(n_charts, 6).astype(np.float64)
    size = np.bincount(chart, minlength=n_charts)
    own = np.zeros(n_charts, np.int64)
    own[chart] = label
    border[bad > 0] = -1.0
    border[np.arange(n_charts), own] = -1.0
    target = border.argmax(axis=1)
    move = (size < SMALL_CHART) & (border.max(axis=1) > 0)
    new = np.where(move, target, own)
    return new[chart]


def _pack(w: np.ndarray, h: np.ndarray, size: int) -> np.ndarray | None:
    """Shelf packing (first fit, tallest first) of boxes (w, h texels) into a size x size square: (N, 2)
    corners, or None when they do not fit."""
    corners = np.zeros((len(w), 2))
    shelves: list[list[float]] = []  # [y, height, x of the free space]
    top = 0.0
    for i in np.argsort(-h, kind="stable"):
        if w[i] > size:
            return None
        shelf = next((s for s in shelves if s[2] + w[i] <= size), None)
        if shelf is None:
            if top + h[i] > size:
                return None
            shelf = [top, h[i], 0.0]
            shelves.append(shelf)
            top += h[i]
        corners[i] = (shelf[2], shelf[0])
        shelf[2] += w[i]
    return corners


def rasterize(xy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pixel centre inside a triangle: xy (F, 3, 2) pixel coordinates (pixel (i, j) spans
    [i, i + 1] x [j, j + 1]) -> (pixel index j * width + i (N,), face (N,), barycentrics (N, 3))."""
    xy = np.asarray(xy, np.float32)
    x0 = np.clip(np.floor(xy[..., 0].min(axis=1) - 0.5).astype(np.int64) + 1, 0, width)
    x1 = np.clip(np.floor(xy[..., 0].max(axis=1) - 0.5).astype(np.int64) + 1, 0, width)
    y0 = np.clip(np.floor(xy[..., 1].min(axis=1) - 0.5).astype(np.int64) + 1, 0, height)
    y1 = np.clip(np.floor(xy[..., 1].max(axis=1) - 0.5).astype(np.int64) + 1, 0, height)
    nx, ny = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    count = nx * ny
    face = np.repeat(np.arange(len(xy)), count)
    start = np.cumsum(count) - count
    offset = np.arange(int(count.sum())) - start[face]
    step = np.maximum(nx, 1)[face]
    py, px = np.divmod(offset, step)
    px += x0[face]
    py += y0[face]
    # edge functions relative to each triangle's first corner, float32
    a = xy[:, 0]
    e1, e2 = xy[:, 1] - a, xy[:, 2] - a
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    qx = (px + 0.5).astype(np.float32) - a[face, 0]
    qy = (py + 0.5).astype(np.float32) - a[face, 1]
    w1 = qx * e2[face, 1] - qy * e2[face, 0]  # area of (a, q, c): weight of b
    w2 = e1[face, 0] * qy - e1[face, 1] * qx  # area of (a, b, q): weight of c
    ar = area[face]
    sign = np.sign(ar)
    w0 = ar - w1 - w2
    inside = (w0 * sign >= 0) & (w1 * sign >= 0) & (w2 * sign >= 0) & (ar != 0)
    ar = ar[inside]
    bary = np.stack([w0[inside], w1[inside], w2[inside]], axis=1) / ar[:, None]
    return (py * width + px)[inside], face[inside], bary.astype(np.float64)


def _camera_space(points: np.ndarray, camera: CameraInfo, k: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) pixel coordinates (pixel centres at +0.5) in a photo scaled by ``k`` and (N,) depth."""
    w2c = np.linalg.inv(np.asarray(camera.cam2world, np.float64)).astype(points.dtype)
    local = points @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -local[:, 2]
    safe = np.where(depth > 1e-9, depth, 1e-9)
    u = (camera.cx + camera.focal_px * local[:, 0] / safe) * k
    v = (camera.cy - camera.focal_px * local[:, 1] / safe) * k
    return np.stack([u, v], axis=1), depth


def depth_buffer(vertices: np.ndarray, faces: np.ndarray, camera: CameraInfo, k: float, width: int, height: int
                 ) -> np.ndarray:
    """(height, width) depth of the nearest surface seen through ``camera`` in a photo scaled by ``k``
    (inf where the mesh is not). The mesh is closed, so faces turned away from the camera are never the
    nearest and are skipped."""
    import torch

    v = np.asarray(vertices, np.float32)
    f = np.asarray(faces, np.int64)
    uv, depth = _camera_space(v, camera, k)
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    to_cam = np.asarray(camera.cam2world, np.float32)[:3, 3] - tri[:, 0]
    keep = (depth[f] > 1e-6).all(axis=1) & (np.einsum("fj,fj->f", normal, to_cam) > 0)
    f = f[keep]
    pix, face, bary = rasterize(uv[f], width, height)
    z = np.einsum("nk,nk->n", bary, depth[f[face]]).astype(np.float32)
    buf = torch.full((width * height,), float("inf"))
    buf.scatter_reduce_(0, torch.from_numpy(pix), torch.from_numpy(z), reduce="amin")
    return buf.numpy().reshape(height, width)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def photo_weights(points: np.ndarray, normals: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                  camera: CameraInfo, mask: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """How much each surface point (N, 3) with unit normal (N, 3) takes of the photo, in [0, 1], and where
    it lies in the photo scaled by ``k`` (whose foreground ``mask`` (H, W) is given): (weights (N,), (N, 2)
    pixel coordinates)."""
    import cv2

    height, width = mask.shape
    uv, depth = _camera_space(points, camera, k)
    d = min(1.0, DEPTH_SIDE / max(width, height))
    dw, dh = max(1, round(width * d)), max(1, round(height * d))
    buf = depth_buffer(vertices, faces, camera, k * d, dw, dh)
    buf = np.where(np.isfinite(buf), buf, 1e9).astype(np.float32)
    bi = np.clip((uv[:, 1] * d).astype(np.int32), 0, dh - 1)
    bj = np.clip((uv[:, 0] * d).astype(np.int32), 0, dw - 1)
    view = np.asarray(camera.cam2world, np.float32)[:3, 3] - points
    cos = np.einsum("nj,nj->n", normals, view) / np.maximum(np.sqrt(np.einsum("nj,nj->n", view, view)), 1e-12)
    # within one depth-buffer pixel a surface seen at an angle spans this much depth
    slope = depth / (camera.focal_px * k * d) / np.maximum(cos, 0.1)
    margin = DEPTH_MARGIN + slope
    seen = 1.0 - _smoothstep((depth - buf[bi, bj]) / margin, 1.0, 2.0)
    inside = cv2.distanceTransform((mask >= 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    i = np.clip(uv[:, 1].astype(np.int32), 0, height - 1)
    j = np.clip(uv[:, 0].astype(np.int32), 0, width - 1)
    in_frame = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height) & (depth > 0)
    edge = np.clip((inside[i, j] - 0.5) / EDGE_PX, 0.0, 1.0)
    return np.where(in_frame, seen * _smoothstep(cos, *GRAZING) * edge, 0.0).astype(np.float32), uv


@dataclass
class View:
    """A photo that sees the mesh: what :func:`bake` takes its pixels from."""

    camera: CameraInfo
    """the recovered camera, in the photo's ORIGINAL pixels and the mesh's frame."""
    photo: np.ndarray
    """(H, W, 3) float32 sRGB display values (the photo as loaded, possibly scaled)."""
    mask: np.ndarray
    """(H, W) float foreground of ``photo`` (>= 0.5: the object)."""
    k: float = 1.0
    """``photo``'s pixels per original pixel."""


def bake(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, colors: np.ndarray, size: int,
         views: list[View] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 sRGB texture of a mesh with ``uv`` (V, 2) and sRGB vertex ``colors`` (V, 3): each
    view's photo where its camera sees the surface (several: their weighted mean), the vertex colours
    elsewhere; and the (size, size) float32 photo weight per texel (0 where no chart lies)."""
    v = np.asarray(vertices, np.float32)
    f = np.asarray(faces, np.int64)
    xy = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], axis=1)[f]
    pix, face, bary = rasterize(xy, size, size)
    bary = bary.astype(np.float32)
    corners = f[face]
    color = np.einsum("nk,nkj->nj", bary, np.asarray(colors, np.float32)[corners])
    weight = np.zeros(len(pix), np.float32)
    if views:
        tri = v[f]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        centre = tri.mean(axis=1)
        total, seen = np.zeros_like(color), np.zeros(len(pix), np.float32)
        for view in views:
            # faces turned well away from this camera take nothing of its photo: skip their texels
            to_cam = np.asarray(view.camera.cam2world, np.float32)[:3, 3] - centre
            facing = np.einsum("fj,fj->f", normals, to_cam) > (GRAZING[0] - 0.1) * np.linalg.norm(to_cam, axis=1)
            todo = np.flatnonzero(facing[face])
            if len(todo) == 0:
                continue
            points = np.einsum("nk,nkj->nj", bary[todo], v[corners[todo]])
            w, at = photo_weights(points, normals[face[todo]], v, f, view.camera, view.mask, view.k)
            use = w > 0
            if not use.any():
                continue
            idx = todo[use]
            total[idx] += w[use, None] * _sample(view.photo, at[use])
            seen[idx] += w[use]
            weight[idx] = np.maximum(weight[idx], w[use])
        use = seen > 0
        color[use] = weight[use, None] * total[use] / seen[use, None] + (1 - weight[use, None]) * color[use]
    tex = np.zeros((size * size, 3), np.float32)
    covered = np.zeros(size * size, np.float32)
    tex[pix] = color
    covered[pix] = 1.0
    wmap = np.zeros(size * size, np.float32)
    wmap[pix] = weight
    tex, covered = tex.reshape(size, size, 3), covered.reshape(size, size)
    tex = _dilate(tex, covered, PADDING + 1)
    return np.round(np.clip(tex, 0.0, 1.0) * 255.0).astype(np.uint8), wmap.reshape(size, size)


def _sample(image: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(N, 3) bilinear samples of ``image`` (H, W, 3) at pixel coordinates ``at`` (N, 2) (centres at +0.5)."""
    import cv2

    n, row = len(at), 1024
    grid = np.zeros((-(-n // row) * row, 2), np.float32)
    grid[:n] = at - 0.5
    grid = grid.reshape(-1, row, 2)  # OpenCV maps must stay under 32767 on a side
    out = cv2.remap(np.ascontiguousarray(image, np.float32), grid[..., 0].copy(), grid[..., 1].copy(),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n]


def _dilate(tex: np.ndarray, covered: np.ndarray, rings: int) -> np.ndarray:
    """Empty texels within ``rings`` texels of filled ones take the nearest filled texel's colour."""
    import cv2

    dist, label = cv2.distanceTransformWithLabels((covered == 0).astype(np.uint8), cv2.DIST_L2, 3,
                                                  labelType=cv2.DIST_LABEL_PIXEL)
    filled = np.flatnonzero(covered.reshape(-1))
    if len(filled) == 0:
        return tex
    grow = (covered.reshape(-1) == 0) & (dist.reshape(-1) <= rings)
    flat = tex.reshape(-1, 3)
    flat[grow] = flat[filled[label.reshape(-1)[grow] - 1]]
    return flat.reshape(tex.shape)


def texture_mesh(mesh, size: int, views: list[View] = ()):
    """A copy of ``mesh`` (core.mesh.Mesh, in the frame of the views' cameras) with a UV atlas and its baked
    texture (:func:`bake`); vertices on chart borders are repeated, with their colours and parts."""
    vmap, faces, uv = atlas(mesh.vertices, mesh.faces, size)
    parts = mesh.parts
    if parts is not None:
        parts = dataclasses.replace(parts, weights=parts.weights[vmap], residual=parts.residual[vmap])
    out = dataclasses.replace(mesh, vertices=mesh.vertices[vmap], faces=faces, colors=mesh.colors[vmap], parts=parts,
                              uv=uv)
    out.texture, _ = bake(out.vertices, faces, uv, out.colors, size, views)
    return out

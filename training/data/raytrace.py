"""Sphere-tracing renderer of procedural chairs, and the pose/light distributions of the data.

Rendering: rays through pixel centres (``core.camera.camera_rays``) are clipped to the chair's
bounding box and sphere-traced on the exact SDF (:func:`.chairs.chair_sdf`). At a hit the normal
comes from SDF finite differences (tetrahedron stencil), the albedo and material from the nearest
part. Shading in linear RGB: sky ambient (brighter from above) with SDF ambient occlusion (five
samples along the normal) + Lambertian key light with an SDF soft shadow + soft fill from the other
side + Blinn-Phong specular and a studio environment reflection whose strength depends on the
material (fabric ~none, wood a little, leather and plastic more, metal mirror-like). Output is
sRGB; alpha is the supersampled pixel coverage.

Pose distribution (:func:`sample_view`), matching how users photograph chairs:
- azimuth uniform in [0, 360) degrees (0 = camera on -Y, seeing the chair's front; positive
  moves the camera toward +X, see ``core.camera.orbit_pose``);
- elevation uniform in [0, 45] degrees above the horizon;
- focal length uniform in [35, 60] mm on a 36 mm wide sensor (``focal_px = mm / 36 * width``),
  principal point at the image centre;
- distance chosen so that the chair's projected extent (of its surface samples) fills a uniform
  [0.5, 0.9] fraction of the frame: ``max(extent_u / width, extent_v / height)``;
- the camera looks at the origin, then turns slightly (a small rotation, horizon kept level) so
  that the chair's projected box centre moves by a random offset of up to 80 % of the free
  margin; the chair is never cut off (checked by projection, with a 2 pixel margin).

Lights (:func:`sample_light`): key light from the camera's side and above (azimuth within +-75
degrees of the viewing direction, elevation 10..60 degrees, in the CAMERA frame), ambient sky
0.25..0.5, fill 0.05..0.2, slightly warm or cool key colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from core.geometry.camera import Camera, camera_rays, look_at, project_depth

from .chairs import (
    FABRIC,
    LEATHER,
    METAL,
    PLASTIC,
    WOOD,
    ChairSpec,
    _albedo_of,
    chair_query,
    chair_sdf,
    part_material,
    surface_samples,
)

# material -> (specular strength, Blinn-Phong exponent, reflection strength at grazing angles)
_SPEC = {WOOD: (0.10, 30.0, 0.25), FABRIC: (0.015, 6.0, 0.02), PLASTIC: (0.45, 90.0, 0.6),
         LEATHER: (0.2, 25.0, 0.35), METAL: (0.9, 120.0, 1.0)}


@dataclass
class Light:
    """Studio lighting of one render."""

    ambient: float = 0.35
    """strength of the sky (environment) light."""
    key_dir: np.ndarray = field(default_factory=lambda: np.array([0.5, 0.5, 0.7]))
    """(3,) direction TOWARD the key light in the CAMERA frame (x right, y up, z toward the viewer)."""
    key_intensity: float = 0.75
    """strength of the key light."""
    key_color: np.ndarray = field(default_factory=lambda: np.ones(3))
    """(3,) RGB tint of the key light (around 1)."""
    fill: float = 0.12
    """strength of the fill light, mirrored from the key across the view axis, lower."""
    shadow: float = 0.8
    """0..1 darkness of the key light's soft shadow (0 = no shadows)."""
    exposure: float = 1.0
    """multiplier on the linear radiance before the sRGB conversion."""


def sample_light(rng: np.random.Generator) -> Light:
    """A random studio light (see the module docstring)."""
    az = math.radians(rng.uniform(-75, 75))
    el = math.radians(rng.uniform(10, 60))
    d = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
    warm = rng.normal(0, 0.04)
    color = np.array([1 + warm, 1.0, 1 - warm])
    return Light(rng.uniform(0.25, 0.5), d, rng.uniform(0.5, 0.9), color, rng.uniform(0.05, 0.2),
                 rng.uniform(0.5, 0.9), rng.uniform(0.9, 1.15))


# --------------------------------------------------------------------------------------------
# tracing


def _box_hits(o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Ray/box slab intersection: o, d (R, 3) -> t_near, t_far (R,)."""
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    tn = torch.minimum(t0, t1).max(-1).values
    tf = torch.maximum(t0, t1).min(-1).values
    return tn.clamp(min=0), tf


def trace(spec: ChairSpec, origins: Tensor, dirs: Tensor, pixel_angle: float, max_steps: int = 128
          ) -> tuple[Tensor, Tensor]:
    """Sphere tracing: origins, dirs (R, 3) -> t (R,), hit mask (R,).

    ``pixel_angle`` (radians per pixel) sets the hit tolerance (a tenth of a pixel footprint).
    """
    lo = torch.tensor(spec.bbox_min, dtype=torch.float32) - 0.02
    hi = torch.tensor(spec.bbox_max, dtype=torch.float32) + 0.02
    tn, tf = _box_hits(origins, dirs, lo, hi)
    t = tn.clone()
    hit = torch.zeros(t.shape[0], dtype=torch.bool)
    active = torch.nonzero(tf > tn)[:, 0]
    for _ in range(max_steps):
        if active.numel() == 0:
            break
        ta = t[active]
        d = chair_sdf(spec, origins[active] + dirs[active] * ta[:, None])
        eps = (0.1 * pixel_angle * ta).clamp(min=1e-4)
        h = d < eps
        hit[active[h]] = True
        ta = ta + d
        t[active] = ta
        keep = ~h & (ta < tf[active])
        active = active[keep]
    if active.numel():  # out of steps: accept if close
        d = chair_sdf(spec, origins[active] + dirs[active] * t[active, None])
        hit[active[d < 5e-3]] = True
    return t, hit


def _normals(spec: ChairSpec, p: Tensor, h: float = 1e-3) -> Tensor:
    k = torch.tensor([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=torch.float32)
    pts = (p[None] + h * k[:, None]).reshape(-1, 3)
    d = chair_sdf(spec, pts).reshape(4, -1)
    n = (d[..., None] * k[:, None]).sum(0)
    return n / n.norm(dim=-1, keepdim=True).clamp(min=1e-9)


def _ambient_occlusion(spec: ChairSpec, p: Tensor, n: Tensor) -> Tensor:
    hs = torch.tensor([0.015, 0.04, 0.08, 0.13, 0.2])
    w = torch.tensor([0.3, 0.25, 0.2, 0.15, 0.1])
    pts = (p[None] + n[None] * hs[:, None, None]).reshape(-1, 3)
    d = chair_sdf(spec, pts).reshape(len(hs), -1)
    occ = (w[:, None] * ((hs[:, None] - d) / hs[:, None]).clamp(0, 1)).sum(0)
    return (1 - 1.1 * occ).clamp(0.05, 1)


def _soft_shadow(spec: ChairSpec, p: Tensor, n: Tensor, L: Tensor, steps: int = 20, k: float = 12.0) -> Tensor:
    """Fraction (R,) of the key light reaching ``p`` (iq's SDF soft shadow)."""
    o = p + n * 0.01
    t = torch.full((p.shape[0],), 0.02)
    res = torch.ones(p.shape[0])
    idx = torch.arange(p.shape[0])
    for _ in range(steps):
        if idx.numel() == 0:
            break
        d = chair_sdf(spec, o[idx] + L[None] * t[idx, None])
        res[idx] = torch.minimum(res[idx], (k * d / t[idx]).clamp(min=0))
        t[idx] = t[idx] + d.clamp(0.01, 0.15)
        keep = (res[idx] > 0.02) & (t[idx] < 2.0)
        idx = idx[keep]
    return res.clamp(0, 1)


def _env(r: Tensor) -> Tensor:
    """Studio environment radiance (R,) seen along reflected directions r (R, 3), world frame."""
    z = r[:, 2]
    ground = 0.2
    horizon = 1.0 + 0.4 * torch.exp(-((z - 0.05) / 0.08) ** 2)
    sky = 0.75
    val = torch.where(z < 0, ground + (horizon - ground) * torch.exp(z / 0.08),
                      sky + (horizon - sky) * torch.exp(-z / 0.25))
    return val


def _srgb_to_linear(c: Tensor) -> Tensor:
    return c.clamp(0, 1) ** 2.2


def _linear_to_srgb(c: Tensor) -> Tensor:
    return c.clamp(0, 1) ** (1 / 2.2)


def shade(spec: ChairSpec, p: Tensor, view: Tensor, light: Light, cam_rot: Tensor) -> Tensor:
    """Linear RGB (R, 3) of surface points p (R, 3) seen along unit directions ``view`` (R, 3)."""
    n = _normals(spec, p)
    n = torch.where(((n * view).sum(-1, keepdim=True) > 0), -n, n)  # face the viewer
    _, part = chair_query(spec, p)
    albedo = _srgb_to_linear(_albedo_of(spec, p, part))
    mat, gloss = part_material(spec, part)
    ks = torch.zeros_like(gloss)
    shin = torch.zeros_like(gloss)
    refl = torch.zeros_like(gloss)
    for m, (a, s, r) in _SPEC.items():
        sel = mat == m
        ks = torch.where(sel, a * gloss, ks)
        shin = torch.where(sel, torch.full_like(gloss, s) * (0.5 + gloss), shin)
        refl = torch.where(sel, r * gloss, refl)
    metallic = torch.where(mat == METAL, gloss**2, torch.zeros_like(gloss))

    L = cam_rot @ torch.tensor(light.key_dir, dtype=torch.float32)
    L = L / L.norm()
    kd = torch.tensor(light.key_dir, dtype=torch.float32)
    Lf = cam_rot @ torch.tensor([-kd[0], 0.3 * kd[1], abs(kd[2]) + 0.3])
    Lf = Lf / Lf.norm()
    ao = _ambient_occlusion(spec, p, n)
    shadow = 1 - light.shadow * (1 - _soft_shadow(spec, p, n, L)) if light.shadow > 0 else torch.ones_like(ao)
    ndl = (n @ L).clamp(min=0)
    sky = light.ambient * (0.7 + 0.3 * n[:, 2]) * ao
    fill = light.fill * (n @ Lf).clamp(min=0) * ao.sqrt()
    key = light.key_intensity * ndl * shadow
    kc = torch.tensor(light.key_color, dtype=torch.float32)
    diffuse = albedo * (sky[:, None] + fill[:, None] + key[:, None] * kc) * (1 - 0.85 * metallic)[:, None]

    V = -view
    H = L[None] + V
    H = H / H.norm(dim=-1, keepdim=True)
    ndh = (n * H).sum(-1).clamp(min=0)
    spec_col = torch.where((mat == METAL)[:, None], albedo, torch.ones_like(albedo))
    spec_term = (ks * ndh**shin * (shin + 8) / 40 * key.clamp(max=1) * (ndl > 0))[:, None] * spec_col * kc
    ndv = (n * V).sum(-1).clamp(0, 1)
    fres = torch.where(mat == METAL, metallic, 0.04 + 0.96 * (1 - ndv) ** 5)
    R = 2 * ndv[:, None] * n - V
    env = _env(R) * light.ambient / 0.35 * ao
    reflect = (refl * fres * env)[:, None] * spec_col * 0.6
    return (diffuse + spec_term + reflect) * light.exposure


def _cam_rot(camera: Camera) -> Tensor:
    return camera.cam2world[0, :3, :3].to(torch.float32)


def render(spec: ChairSpec, camera: Camera, light: Light, supersample: int = 2, background=None) -> np.ndarray:
    """(H, W, 4) float32 image: RGB in [0, 1] (sRGB), alpha = pixel coverage.

    RGB is un-premultiplied, or composited over ``background`` ((3,) or (H, W, 3) sRGB) if given;
    alpha is returned in both cases. ``camera`` is a batch-1 :class:`core.camera.Camera`.
    """
    ss = int(supersample)
    W, H = camera.width, camera.height
    cam = camera.resized(W * ss, H * ss)
    rays = camera_rays(cam)
    o, d = rays.origins[0].float(), rays.directions[0].float()
    t, hit = trace(spec, o, d, 1.0 / float(cam.focal[0]))
    rgb = torch.zeros(o.shape[0], 3)
    idx = torch.nonzero(hit)[:, 0]
    if idx.numel():
        p = o[idx] + d[idx] * t[idx, None]
        rgb[idx] = shade(spec, p, d[idx], light, _cam_rot(camera))
    alpha = hit.float()
    rgb = rgb.reshape(H, ss, W, ss, 3)
    alpha = alpha.reshape(H, ss, W, ss)
    a = alpha.mean(dim=(1, 3))
    col = (rgb * alpha[..., None]).sum(dim=(1, 3)) / alpha.sum(dim=(1, 3)).clamp(min=1)[..., None]
    col = _linear_to_srgb(col)
    if background is not None:
        bg = torch.as_tensor(np.asarray(background, dtype=np.float32))
        col = col * a[..., None] + bg * (1 - a[..., None])
    return torch.cat([col, a[..., None]], -1).numpy().astype(np.float32)


def render_depth_coords(spec: ChairSpec, camera: Camera) -> dict[str, np.ndarray]:
    """Geometry buffers (no supersampling): 'coords' (H, W, 3) canonical surface points (0 where
    the chair is missed), 'mask' (H, W) bool, 'depth' (H, W) depth along the camera's -Z (0 where
    missed), 'normals' (H, W, 3) world normals."""
    W, H = camera.width, camera.height
    rays = camera_rays(camera)
    o, d = rays.origins[0].float(), rays.directions[0].float()
    t, hit = trace(spec, o, d, 1.0 / float(camera.focal[0]))
    coords = torch.zeros(o.shape[0], 3)
    normals = torch.zeros(o.shape[0], 3)
    depth = torch.zeros(o.shape[0])
    idx = torch.nonzero(hit)[:, 0]
    if idx.numel():
        p = o[idx] + d[idx] * t[idx, None]
        coords[idx] = p
        normals[idx] = _normals(spec, p)
        fwd = -_cam_rot(camera)[:, 2]
        depth[idx] = t[idx] * (d[idx] @ fwd)
    return {"coords": coords.reshape(H, W, 3).numpy(), "mask": hit.reshape(H, W).numpy(),
            "depth": depth.reshape(H, W).numpy(), "normals": normals.reshape(H, W, 3).numpy()}


# --------------------------------------------------------------------------------------------
# views


def make_camera(cam2world: np.ndarray, focal: float, width: int, height: int) -> Camera:
    """Batch-1 Camera with the principal point at the image centre."""
    return Camera(torch.tensor(cam2world, dtype=torch.float32)[None], torch.tensor([focal], dtype=torch.float32),
                  torch.tensor([width / 2.0]), torch.tensor([height / 2.0]), width, height)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def _extent(cam2world: np.ndarray, focal: float, width: int, height: int, pts: Tensor):
    cam = make_camera(cam2world, focal, width, height)
    uv, depth = project_depth(cam, pts[None])
    uv = uv[0].numpy()
    return uv.min(0), uv.max(0), float(depth.min())


def view_points(spec: ChairSpec | None, n: int = 4096) -> Tensor:
    """Points (n, 3) whose projection stands for the chair's silhouette (surface samples; the
    corners of [-0.8, 0.8]^3 without a spec)."""
    if spec is None:
        c = torch.tensor([-0.8, 0.8])
        return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    pts = surface_samples(spec)["points"]
    return pts[:: max(1, pts.shape[0] // n)]


def fit_view(pts: Tensor, azimuth: float, elevation: float, focal: float, width: int, height: int,
             fill: float, offset: tuple[float, float] = (0.0, 0.0), margin: float = 2.0) -> np.ndarray:
    """cam2world (4, 4) looking at the chair from (azimuth, elevation) in degrees so that it fills
    ``fill`` of the frame, its projected box centre moved by ``offset`` (fractions of the free
    margin, each in [-1, 1]); the offset is halved until nothing is cut off."""
    az, el = math.radians(azimuth), math.radians(elevation)
    direction = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
    dist = focal * 1.6 / (fill * max(width, height)) + 1.0
    size = np.array([width, height], dtype=np.float64)
    for _ in range(6):
        m = look_at(direction * dist)
        lo, hi, _ = _extent(m, focal, width, height, pts)
        frac = float(((hi - lo) / size).max())
        dist = dist * (0.15 + 0.85 * frac / fill)  # distance ~ 1/size, damped
    ou, ov = offset
    for _ in range(8):
        m = look_at(direction * dist)
        lo, hi, _ = _extent(m, focal, width, height, pts)
        slack = np.maximum(size - (hi - lo) - 2 * margin, 0) / 2
        want = size / 2 + np.array([ou, ov]) * slack * 0.8
        shift = want - (hi + lo) / 2  # pixels to move the projected box centre
        for _ in range(2):
            # camera-local direction of the pixel where the origin must land
            pix = np.array([shift[0], shift[1]])
            loc = np.array([pix[0] / focal, -pix[1] / focal, -1.0])
            q = _rotation_between(loc / np.linalg.norm(loc), np.array([0.0, 0.0, -1.0]))
            m2 = m.copy()
            m2[:3, :3] = m[:3, :3] @ q
            lo2, hi2, _ = _extent(m2, focal, width, height, pts)
            shift = shift + (want - (hi2 + lo2) / 2)
        if (lo2 >= margin).all() and (hi2 <= size - margin).all():
            return m2
        ou, ov = ou / 2, ov / 2
    return look_at(direction * dist * 1.1)


def sample_view(rng: np.random.Generator, width: int, height: int, spec: ChairSpec | None = None,
                lens_mm: tuple[float, float] = (35.0, 60.0)) -> Camera:
    """A random camera (batch 1) from the pose distribution in the module docstring (``lens_mm``: the
    range of lenses on a 36 mm-wide sensor)."""
    az = rng.uniform(0, 360)
    el = rng.uniform(0, 45)
    mm = rng.uniform(*lens_mm)
    focal = mm / 36.0 * width
    fill = rng.uniform(0.5, 0.9)
    off = (rng.uniform(-1, 1), rng.uniform(-1, 1))
    m = fit_view(view_points(spec), az, el, focal, width, height, fill, off)
    return make_camera(m, focal, width, height)

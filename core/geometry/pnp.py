"""Camera pose from 2D pixel <-> 3D canonical-coordinate correspondences (Perspective-n-Point).

The encoder predicts, for every foreground pixel of the crop, the canonical (object-frame)
coordinate of the visible surface. :func:`solve_pnp` turns these correspondences into a Blender
camera: for each focal-length proposal it runs OpenCV's SQPnP (EPnP as a fallback, plus an EPnP
RANSAC hypothesis), refines with Levenberg-Marquardt (``SOLVEPNP_ITERATIVE``), re-solves on the
inliers, and finally keeps the proposal with the lowest robust reprojection error; the focal
length itself is then refined by a golden-section search around the winner.

Frames (see docs/CONVENTIONS.md): OpenCV's camera looks along +Z with +Y down; the returned
``cam2world`` follows Blender (looks along local -Z, +Y up) and maps camera-local points to the
canonical frame. The quaternion helpers at the bottom are the differentiable rotation
parameterization used by the gradient-based pose refinement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import ReconstructionError
from .lens import focal_35mm_to_px

# OpenCV camera (x right, y down, z forward) -> Blender camera (x right, y up, z backward).
_CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])
_MIN_POINTS = 6
_MIN_INLIER_PX = 2.0
_HINT = "try a photo where the object is larger and fully visible"


@dataclass
class PnPResult:
    """A solved camera pose with its intrinsics and fit quality."""

    cam2world: np.ndarray
    """(4, 4) float64 camera-local -> world (canonical frame), Blender convention."""
    focal: float
    """focal length in pixels of the image the 2D points live in."""
    cx: float
    """principal point x in pixels from the left edge."""
    cy: float
    """principal point y in pixels from the top edge."""
    reprojection_error: float
    """(weighted) mean reprojection error in pixels over the inliers."""
    inlier_ratio: float
    """fraction of the (finite, positive-weight) correspondences that are inliers."""


@dataclass
class _Solution:
    """One candidate pose in OpenCV form, for a fixed focal length."""

    rvec: np.ndarray
    """(3,) Rodrigues rotation world -> OpenCV camera."""
    tvec: np.ndarray
    """(3,) translation world -> OpenCV camera."""
    focal: float
    """focal length in pixels."""
    errors: np.ndarray
    """(N,) reprojection error of every correspondence in pixels."""
    inliers: np.ndarray
    """(N,) bool, correspondences used by the final solve."""


def default_focal_candidates(width: int, height: int, count: int = 9) -> list[float]:
    """Focal-length proposals in pixels: 18-75 mm (35 mm-equivalent, see core.geometry.lens), geometric."""
    return [focal_35mm_to_px(float(m), width, height) for m in np.geomspace(18.0, 75.0, count)]


@dataclass
class PnPCamera:
    """The image the 2D points live in and what is known of its camera."""

    width: int
    """image width in pixels."""
    height: int
    """image height in pixels."""
    principal: tuple[float, float] | None = None
    """principal point (cx, cy) in pixels (None: the image centre)."""
    focal_candidates: Sequence[float] | None = None
    """focal lengths in pixels to try (None: :func:`default_focal_candidates`; one value: a known focal)."""
    refine_focal: bool | None = None
    """search the focal length around the best candidate (None: when more than one candidate is given)."""


def solve_pnp(points_2d: np.ndarray, points_3d: np.ndarray, camera: PnPCamera,
              weights: np.ndarray | None = None, path: str = "") -> PnPResult:
    """Camera pose from correspondences.

    ``points_2d`` (N, 2) pixel coordinates (pixel centres at u + 0.5), ``points_3d`` (N, 3)
    canonical coordinates, ``weights`` (N,) optional confidences (rows with weight <= 0 or
    non-finite values are ignored). Raises :class:`ReconstructionError` naming ``path`` when no
    pose can be found.
    """
    p2, p3, w = _prepare(points_2d, points_3d, weights, path)
    try:
        return _solve(p2, p3, w, camera, path)
    except (cv2.error, np.linalg.LinAlgError) as err:  # should not happen after _prepare; never leak it
        raise ReconstructionError(f"could not find the object's pose: the solver failed ({err}); {_HINT}",
                                  path) from err


def _solve(p2: np.ndarray, p3: np.ndarray, w: np.ndarray, camera: PnPCamera, path: str) -> PnPResult:
    """:func:`solve_pnp` on validated arrays."""
    cx, cy = (camera.width / 2.0, camera.height / 2.0) if camera.principal is None else map(float, camera.principal)
    focal_candidates = camera.focal_candidates
    if focal_candidates is None:
        focal_candidates = default_focal_candidates(camera.width, camera.height)
    refine_focal = camera.refine_focal
    focals = sorted({float(f) for f in focal_candidates if np.isfinite(f) and f > 0})
    if not focals:
        raise ReconstructionError(f"could not find the object's pose: no valid focal length was given "
                                  f"({list(focal_candidates)}); pass positive focal lengths in pixels", path)
    if refine_focal is None:
        refine_focal = len(focals) > 1

    solutions: list[_Solution | None] = [_solve_fixed_focal(p2, p3, w, f, cx, cy) for f in focals]
    valid = [s for s in solutions if s is not None]
    if not valid:
        raise ReconstructionError(f"could not find the object's pose: every solution puts the object "
                                  f"behind the camera; {_HINT}", path)
    # One truncation threshold for every candidate so that their scores compare.
    tau = max(_MIN_INLIER_PX, 2.5 * min(_weighted_median(s.errors, w) for s in valid))

    def score(sol: _Solution | None) -> float:
        if sol is None:
            return math.inf
        return float(np.sum(w * np.minimum(sol.errors, tau) ** 2) / np.sum(w))

    scores = [score(s) for s in solutions]
    best_i = int(np.argmin(scores))
    best = solutions[best_i]

    if refine_focal:
        # Golden-section search over log(focal) between the winner's neighbours.
        ratio = focals[1] / focals[0] if len(focals) > 1 else 1.25
        lo = focals[best_i - 1] if best_i > 0 else focals[0] / ratio
        hi = focals[best_i + 1] if best_i + 1 < len(focals) else focals[-1] * ratio
        cache: dict[float, _Solution | None] = {}

        def evaluate(log_f: float) -> float:
            f = math.exp(log_f)
            sol = _solve_fixed_focal(p2, p3, w, f, cx, cy, guess=_rescaled(best, f, p3, w))
            cache[log_f] = sol
            return score(sol)

        a, b = math.log(lo), math.log(hi)
        g = (math.sqrt(5.0) - 1.0) / 2.0
        c, d = b - g * (b - a), a + g * (b - a)
        fc, fd = evaluate(c), evaluate(d)
        for _ in range(12):
            if fc <= fd:
                b, d, fd = d, c, fc
                c = b - g * (b - a)
                fc = evaluate(c)
            else:
                a, c, fc = c, d, fd
                d = a + g * (b - a)
                fd = evaluate(d)
        for sol in cache.values():
            if score(sol) < score(best):
                best = sol

    assert best is not None
    return _to_result(best, w, cx, cy)


def _prepare(points_2d, points_3d, weights, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 (N, 2), (N, 3), (N,) arrays without non-finite or zero-weight rows."""
    p2 = np.asarray(points_2d, dtype=np.float64)
    p3 = np.asarray(points_3d, dtype=np.float64)
    if p2.ndim != 2 or p2.shape[1] != 2 or p3.ndim != 2 or p3.shape[1] != 3 or len(p2) != len(p3):
        raise ReconstructionError(f"could not find the object's pose: expected (N, 2) pixel and (N, 3) "
                                  f"object coordinates, got {p2.shape} and {p3.shape}", path)
    w = np.ones(len(p2)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(p2):
        raise ReconstructionError(f"could not find the object's pose: {len(w)} weights for {len(p2)} "
                                  f"correspondences", path)
    keep = np.isfinite(p2).all(1) & np.isfinite(p3).all(1) & np.isfinite(w) & (w > 0)
    p2, p3, w = p2[keep], p3[keep], w[keep]
    if len(p2) < _MIN_POINTS:
        raise ReconstructionError(f"could not find the object's pose: only {len(p2)} usable pixel "
                                  f"correspondences (at least {_MIN_POINTS} needed); {_HINT}", path)
    for pts, what in ((p3, "3D object coordinates"), (p2, "pixel positions")):
        s = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
        if s[0] < 1e-9 or s[1] < 1e-6 * s[0]:
            raise ReconstructionError(f"could not find the object's pose: the predicted {what} are all "
                                      f"identical or on one line; {_HINT}", path)
    return p2, p3, w / w.max()


def _intrinsics(focal: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def _errors(p2: np.ndarray, p3: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N,) reprojection errors in pixels."""
    proj, _ = cv2.projectPoints(p3, rvec, tvec, k, None)
    return np.linalg.norm(proj.reshape(-1, 2) - p2, axis=1)


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def _in_front(p3: np.ndarray, w: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> bool:
    """Object centre and most of the (weighted) points have positive OpenCV depth."""
    rot, _ = cv2.Rodrigues(rvec)
    depth = p3 @ rot[2] + tvec[2]
    centre = np.average(p3, axis=0, weights=w) @ rot[2] + tvec[2]
    return bool(centre > 0 and np.sum(w * (depth > 0)) > 0.5 * np.sum(w))


def _cv_solve(p3: np.ndarray, p2: np.ndarray, k: np.ndarray, flag: int,
              guess: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """cv2.solvePnP that returns None instead of failing or raising."""
    try:
        if guess is None:
            ok, rvec, tvec = cv2.solvePnP(p3, p2, k, None, flags=flag)
        else:
            ok, rvec, tvec = cv2.solvePnP(p3, p2, k, None, guess[0].copy().reshape(3, 1),
                                          guess[1].copy().reshape(3, 1), useExtrinsicGuess=True, flags=flag)
    except cv2.error:
        return None
    if not ok or not (np.isfinite(rvec).all() and np.isfinite(tvec).all()):
        return None
    return rvec.reshape(3), tvec.reshape(3)


def _initial_hypotheses(p2: np.ndarray, p3: np.ndarray, k: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """SQPnP (EPnP fallback) on all points, and an EPnP-RANSAC hypothesis against gross outliers."""
    hyps = []
    sol = _cv_solve(p3, p2, k, cv2.SOLVEPNP_SQPNP) or _cv_solve(p3, p2, k, cv2.SOLVEPNP_EPNP)
    if sol is not None:
        hyps.append(sol)
    try:  # OpenCV's RANSAC uses a fixed seed, so this is deterministic
        ok, rvec, tvec, _ = cv2.solvePnPRansac(
            p3, p2, k, None, iterationsCount=100, reprojectionError=max(_MIN_INLIER_PX, 0.02 * k[0, 0]),
            confidence=0.999, flags=cv2.SOLVEPNP_EPNP)
    except cv2.error:
        ok = False
    if ok and np.isfinite(rvec).all() and np.isfinite(tvec).all():
        hyps.append((rvec.reshape(3), tvec.reshape(3)))
    return hyps


def _weighted_refine(p2: np.ndarray, p3: np.ndarray, w: np.ndarray, rvec: np.ndarray, tvec: np.ndarray,
                     k: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on sum_i w_i |proj_i - p2_i|^2 over rotation and translation."""
    params = np.concatenate([rvec, tvec])
    sw = np.sqrt(w)[:, None]

    def residual(x):
        proj, jac = cv2.projectPoints(p3, x[:3], x[3:], k, None)
        return ((proj.reshape(-1, 2) - p2) * sw).reshape(-1), jac[:, :6] * np.repeat(sw, 2, axis=0)

    r, jac = residual(params)
    cost, lam = float(r @ r), 1e-3
    for _ in range(iterations):
        jtj, jtr = jac.T @ jac, jac.T @ r
        try:
            step = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jtr)
        except np.linalg.LinAlgError:
            break
        r_new, jac_new = residual(params + step)
        cost_new = float(r_new @ r_new)
        if cost_new < cost:
            params, r, jac, lam = params + step, r_new, jac_new, lam * 0.3
            if cost - cost_new < 1e-10 * cost:
                break
            cost = cost_new
        else:
            lam *= 10.0
    return params[:3], params[3:]


def _solve_fixed_focal(p2: np.ndarray, p3: np.ndarray, w: np.ndarray, focal: float, cx: float, cy: float,
                       guess: tuple[np.ndarray, np.ndarray] | None = None) -> _Solution | None:
    """Best pose for one focal length, or None if every hypothesis is behind the camera."""
    k = _intrinsics(focal, cx, cy)
    hyps = [guess] if guess is not None else _initial_hypotheses(p2, p3, k)
    uniform = bool(np.all(w == w[0]))
    best, best_cost = None, math.inf
    for hyp in hyps:
        sol = _cv_solve(p3, p2, k, cv2.SOLVEPNP_ITERATIVE, hyp) or hyp
        inliers = np.ones(len(p2), dtype=bool)
        for _ in range(4):  # re-solve on the inliers until the inlier set settles
            err = _errors(p2, p3, *sol, k)
            thr = max(_MIN_INLIER_PX, 2.0 * _weighted_median(err, w))
            new_inliers = err < thr
            if new_inliers.sum() < _MIN_POINTS or np.array_equal(new_inliers, inliers):
                break
            inliers = new_inliers
            sol = _cv_solve(p3[inliers], p2[inliers], k, cv2.SOLVEPNP_ITERATIVE, sol) or sol
        if not uniform:
            sol = _weighted_refine(p2[inliers], p3[inliers], w[inliers], *sol, k)
        if not _in_front(p3, w, *sol):
            continue
        err = _errors(p2, p3, *sol, k)
        cost = float(np.sum(w * np.minimum(err, max(_MIN_INLIER_PX, 2.0 * _weighted_median(err, w))) ** 2))
        if cost < best_cost:
            best, best_cost = _Solution(sol[0], sol[1], focal, err, inliers), cost
    return best


def _rescaled(sol: _Solution, focal: float, p3: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Initial guess for another focal length: same rotation, centre pushed along its ray."""
    rot, _ = cv2.Rodrigues(sol.rvec)
    centre = np.average(p3, axis=0, weights=w)
    cam_centre = rot @ centre + sol.tvec
    return sol.rvec.copy(), cam_centre * (focal / sol.focal) - rot @ centre


def _to_result(sol: _Solution, w: np.ndarray, cx: float, cy: float) -> PnPResult:
    rot, _ = cv2.Rodrigues(sol.rvec)
    world2cam = np.eye(4)
    world2cam[:3, :3], world2cam[:3, 3] = rot, sol.tvec
    cam2world = np.eye(4)
    cam2world[:3, :3], cam2world[:3, 3] = rot.T, -rot.T @ sol.tvec
    thr = max(_MIN_INLIER_PX, 2.0 * _weighted_median(sol.errors, w))
    inl = sol.errors < thr
    return PnPResult(cam2world=cam2world @ _CV_TO_BLENDER, focal=float(sol.focal), cx=cx, cy=cy,
                     reprojection_error=float(np.average(sol.errors[inl], weights=w[inl])),
                     inlier_ratio=float(inl.mean()))


# ---------------------------------------------------------------------------------------------
# Differentiable rotation parameterization


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternions (..., 4) as (w, x, y, z) -> rotation matrices (..., 3, 3); ``q`` is normalized."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(rot: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z) with w >= 0.

    Uses the numerically best-conditioned of the four standard formulas per matrix, so it is
    accurate (and differentiable) for every rotation, including 180 degree turns.
    """
    m = rot.reshape(rot.shape[:-2] + (9,))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    four_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                           1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    q_abs = torch.sqrt(four_sq.clamp_min(1e-12))  # 2 * |w|, 2 * |x|, 2 * |y|, 2 * |z|
    # Row i: the quaternion scaled by 2 * q_i, computed from the off-diagonal terms.
    cand = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
    ], dim=-2)
    cand = cand / (2.0 * q_abs[..., :, None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)

"""Shape and pose metrics of the validation sets (training.real.evaluate), NumPy/SciPy/trimesh only.

Meshes are compared after each is centred on its bounding box and scaled to bounding-box diagonal 1
(as training.evaluate.chamfer_l1), from surface samples with their face normals:

- F-score@tau (Tatarchenko et al. 2019, "What do single-view 3D reconstruction networks learn?"): the
  harmonic mean of precision (the share of the reconstruction's samples within tau of the true surface)
  and recall (the share of the true samples within tau of the reconstruction);
- normal consistency (Mescheder et al. 2019, Occupancy Networks): the mean absolute cosine between each
  sample's normal and the normal of its nearest neighbour in the other mesh, averaged over both ways;
- the self-symmetry turn rule: a turn about +Z maps a mesh onto itself when the Chamfer-L1 distance
  between its samples and their turned copy is within :data:`SYMMETRY_FACTOR` times the sampling floor
  (the Chamfer between two independent samplings of the same mesh). A recovered camera that differs
  from the true one by such a turn sees the same object, so :func:`rotation_error_deg` forgives
  exactly those turns, decided from the mesh and not from a family label. Only turns of
  :data:`SYMMETRY_MIN_DEG` or more are tried: a few degrees move a compact mesh's samples by less than
  their spacing, and forgiving them would shave real small errors.

Sampling: 10000 points per mesh (training.evaluate.outer_samples for the true one); the spacing of
samples on a chair is about 0.005 of its diagonal, so the same surface sampled twice scores an
F-score@0.01 of about 0.97 and F-score@0.02 of 1.
"""

from __future__ import annotations

import numpy as np

SYMMETRY_FACTOR = 1.5
"""a turn maps a mesh onto itself when its Chamfer is below this multiple of the sampling floor."""
SYMMETRY_STEP_DEG = 5.0
"""turns about +Z tried by :func:`self_turns` (every 5 deg)."""
SYMMETRY_MIN_DEG = 30.0
"""the smallest turn tried (either way): 30 ... 330 deg."""
SYMMETRY_SAMPLES = 6000


def normalize(pts: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """``pts`` centred on ``vertices``' bounding box and scaled by its diagonal."""
    lo, hi = vertices.min(0), vertices.max(0)
    return (pts - (lo + hi) / 2) / np.linalg.norm(hi - lo)


def samples_with_normals(vertices: np.ndarray, faces: np.ndarray, n: int = 10000,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` surface points (normalized) and their unit face normals."""
    import trimesh

    v = np.asarray(vertices, dtype=np.float64)
    mesh = trimesh.Trimesh(v, np.asarray(faces), process=False)
    pts, idx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return normalize(pts, v), face_normals(v, np.asarray(faces))[idx]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    nrm = np.cross(b - a, c - a)
    return nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)


def distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each point of a its distance to b and its neighbour's index in b, and the same from b to a."""
    from scipy.spatial import cKDTree

    d_ab, i_ab = cKDTree(b).query(a)
    d_ba, i_ba = cKDTree(a).query(b)
    return d_ab, i_ab, d_ba, i_ba


def fscore(d_pred_to_true: np.ndarray, d_true_to_pred: np.ndarray, tau: float) -> float:
    """F-score at distance ``tau`` from the two directions' nearest-neighbour distances."""
    precision = float((d_pred_to_true < tau).mean())
    recall = float((d_true_to_pred < tau).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def normal_consistency(n_a: np.ndarray, n_b: np.ndarray, i_ab: np.ndarray, i_ba: np.ndarray) -> float:
    """Mean |cos| between each sample's normal and its nearest neighbour's in the other set, both ways."""
    ab = np.abs((n_a * n_b[i_ab]).sum(1)).mean()
    ba = np.abs((n_b * n_a[i_ba]).sum(1)).mean()
    return float((ab + ba) / 2)


def compare(pred: tuple[np.ndarray, np.ndarray], true: tuple[np.ndarray, np.ndarray],
            taus: tuple[float, ...] = (0.01, 0.02)) -> dict[str, float]:
    """Chamfer-L1, F-score@tau and normal consistency between two (points, normals) sample sets."""
    (pa, na), (pb, nb) = pred, true
    d_ab, i_ab, d_ba, i_ba = distances(pa, pb)
    out = {"chamfer": float((d_ab.mean() + d_ba.mean()) / 2), "normal_consistency": normal_consistency(na, nb, i_ab, i_ba)}
    for tau in taus:
        out[f"fscore_{tau:g}"] = fscore(d_ab, d_ba, tau)
    return out


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d_ab, _, d_ba, _ = distances(a, b)
    return float((d_ab.mean() + d_ba.mean()) / 2)


def self_turns(vertices: np.ndarray, faces: np.ndarray, step_deg: float = SYMMETRY_STEP_DEG,
               n: int = SYMMETRY_SAMPLES) -> dict:
    """The turns about +Z (through the bounding-box centre, every ``step_deg`` from SYMMETRY_MIN_DEG to
    360 - SYMMETRY_MIN_DEG) that map the mesh onto itself, with the sampling floor and each tried
    turn's Chamfer."""
    pts, _ = samples_with_normals(vertices, faces, n, seed=0)
    again, _ = samples_with_normals(vertices, faces, n, seed=1)
    floor = _chamfer(pts, again)
    tried = {}
    for deg in np.arange(step_deg, 360.0, step_deg):
        if SYMMETRY_MIN_DEG <= deg <= 360.0 - SYMMETRY_MIN_DEG:
            tried[float(deg)] = _chamfer(again, pts @ rot_z(deg).T)
    turns = [deg for deg, d in tried.items() if d <= SYMMETRY_FACTOR * floor]
    return {"turns_deg": turns, "floor": floor, "chamfer_by_turn": tried}


def _angle_deg(r_a: np.ndarray, r_b: np.ndarray) -> float:
    r = r_a.T @ r_b
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def rotation_error_deg(est_c2w: np.ndarray, true_c2w: np.ndarray, turns_deg=()) -> float:
    """Angle between the recovered and the true camera rotation, where the true camera may be turned
    about the object's +Z by any of ``turns_deg`` (turns that map the true mesh onto itself): the
    smallest angle over them (no turns: the plain angle)."""
    r_est, r_true = np.asarray(est_c2w)[:3, :3], np.asarray(true_c2w)[:3, :3]
    return min(_angle_deg(r_est, rot_z(t) @ r_true) for t in (0.0, *turns_deg))

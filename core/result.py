"""What one reconstruction returns: the camera in the original photo and the colored mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CameraInfo:
    """The recovered camera, expressed for the ORIGINAL input image (CONVENTIONS.md)."""

    cam2world: np.ndarray
    """(4, 4) float64 camera-local -> world, Blender convention (looks along -Z, +Y up)."""
    focal_px: float
    """focal length in pixels of the original image (square pixels)."""
    width: int
    """original image width in pixels."""
    height: int
    """original image height in pixels."""
    cx: float
    """principal point x in pixels from the left edge of the original image."""
    cy: float
    """principal point y in pixels from the top edge of the original image."""

    def to_json(self) -> dict:
        return {"cam2world": [[float(v) for v in row] for row in self.cam2world],
                "focal_px": float(self.focal_px), "width": int(self.width), "height": int(self.height),
                "cx": float(self.cx), "cy": float(self.cy)}


@dataclass(kw_only=True)
class RunRecord:
    """What a result says of the run that made it (:class:`ReconstructionResult`, :class:`ObjectResult`)."""

    model: str = ""
    """model name or path used."""
    steps: int = 0
    """inversion steps run (for an object: of the joint inversion)."""
    device: str = "cpu"
    """torch device the work ran on."""
    losses: list[float] = field(default_factory=list)
    """inversion loss per step (empty for steps=0; for an object: summed over the placed views)."""
    timings: dict[str, float] = field(default_factory=dict)
    """seconds per stage: load, encoder, pose, inversion, mesh, total (for an object: of the whole object)."""
    mesh_path: str | None = None
    """mesh file written when an output folder was given."""
    json_path: str | None = None
    """JSON written when an output folder was given (for an object: with every view's camera)."""


@dataclass
class ReconstructionResult(RunRecord):
    """Outcome for one input image; ``ok`` is False when ``error`` says why it failed."""

    image: str
    """the input path as given."""
    ok: bool
    """True when camera and mesh are set."""
    error: str | None = None
    """one-line user-facing message when not ok."""
    error_kind: str | None = None
    """why not ok (core.errors.ERROR_KINDS): 'refused' (an input the user can change), 'failed' or 'cancelled'."""
    camera: CameraInfo | None = None
    """recovered camera in the original image."""
    mesh: object | None = None
    """core.mesh.Mesh: vertices (V, 3) world Z-up, faces (F, 3), colors (V, 3) sRGB in [0, 1], and
    optionally ``parts`` (core.parts.ColorParts: per-vertex part weights and the palette they mix)."""
    mask_source: str = ""
    """where the foreground came from: 'alpha', 'mask' or 'auto'."""
    focal_source: str = ""
    """where the focal length came from: 'given', 'exif', 'default' or 'estimated'."""
    latent: np.ndarray | None = None
    """(num_ws, w_dim) the refined per-layer styles, to re-render or re-mesh the field."""
    plane_offset: np.ndarray | None = None
    """(3, C, R, R) triplane offset fitted by the inversion, added to the planes decoded from ``latent``."""
    light: tuple[float, float] | None = None
    """fitted (ambient, key) light strengths of the model's shading."""
    pose_candidates: list[dict] = field(default_factory=list)
    """the first poses scored before the inversion: {'yaw_deg', 'loss', 'chosen'} per turn of the solved
    camera about the object's up axis (empty when the model tries only one)."""
    placement: object | None = None
    """core.place.Placement: how ``mesh`` and ``camera`` were moved from the model's canonical frame onto the
    floor at real size (None: they are in the canonical frame, option ``place`` False)."""

    def canonical_camera(self) -> CameraInfo | None:
        """``camera`` in the model's canonical frame (where ``latent`` renders the field)."""
        if self.camera is None or self.placement is None:
            return self.camera
        return self.placement.camera_to_canonical(self.camera)

    def to_json(self) -> dict:
        out = {"image": self.image, "model": self.model, "steps": self.steps, "device": self.device,
               "ok": self.ok}
        if self.error:
            out["error"] = self.error
        if self.camera is not None:
            out["camera"] = self.camera.to_json()
        out.update(_mesh_json(self.mesh, self.mesh_path))
        out.update(_run_json(self.timings, self.losses))
        out["mask_source"] = self.mask_source
        out["focal_source"] = self.focal_source
        if self.pose_candidates:
            out["pose_candidates"] = self.pose_candidates
        out.update(_placement_json(self.placement))
        out.update(_palette_json(self.mesh))
        return out


def _mesh_json(mesh, mesh_path: str | None) -> dict:
    """{"mesh": file name and counts}, or nothing without a mesh."""
    if mesh is None:
        return {}
    texture = getattr(mesh, "texture", None)
    return {"mesh": {"path": None if mesh_path is None else mesh_path.replace("\\", "/").split("/")[-1],
                     "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
                     "texture": 0 if texture is None else int(texture.shape[0])}}


def _placement_json(placement) -> dict:
    """{"placement": scale, origin and height, and where the size came from}, or nothing."""
    return {} if placement is None else {"placement": placement.to_json()}


def _run_json(timings: dict, losses: list) -> dict:
    return {"timings_s": {k: round(float(v), 4) for k, v in timings.items()},
            "losses": [round(float(v), 6) for v in losses]}


def _palette_json(mesh) -> dict:
    """{"palette": ...} of a mesh with recolorable parts, or nothing."""
    parts = getattr(mesh, "parts", None)
    return {} if parts is None else {"palette": parts.to_json()}


@dataclass
class ObjectResult(RunRecord):
    """Outcome for one object seen in several photos (:func:`core.joint.reconstruct_object`): one mesh,
    one camera per photo, all in the object's canonical frame."""

    images: list[str]
    """the input paths as given, in order."""
    ok: bool
    """True when ``mesh`` is set and at least one view is placed."""
    error: str | None = None
    """one-line user-facing message when not ok."""
    error_kind: str | None = None
    """why not ok (core.errors.ERROR_KINDS): 'refused' (an input the user can change), 'failed' or 'cancelled'."""
    mesh: object | None = None
    """core.mesh.Mesh of the object (the same object as every placed view's ``mesh``)."""
    views: list[ReconstructionResult] = field(default_factory=list)
    """one per input photo, in input order: ``ok`` with its ``camera`` (and the shared ``mesh``), or not
    ``ok`` with ``error`` naming the photo (unreadable, or dropped because it could not be placed)."""
    latent: np.ndarray | None = None
    """(num_ws, w_dim) the object's refined styles."""
    plane_offset: np.ndarray | None = None
    """(3, C, R, R) the object's fitted triplane offset."""
    placement: object | None = None
    """core.place.Placement of the mesh and every view's camera (None: canonical frame)."""

    @property
    def image(self) -> str:
        """the first photo (names the output files)."""
        return self.images[0] if self.images else "object"

    @property
    def placed(self) -> list[ReconstructionResult]:
        """the views that got a camera."""
        return [v for v in self.views if v.ok]

    def to_json(self) -> dict:
        out = {"object": True, "images": list(self.images), "model": self.model, "steps": self.steps,
               "device": self.device, "ok": self.ok}
        if self.error:
            out["error"] = self.error
        out.update(_mesh_json(self.mesh, self.mesh_path))
        out["views"] = [{k: v for k, v in view.to_json().items() if k not in ("mesh", "palette", "model", "device", "placement")}
                        for view in self.views]
        out.update(_run_json(self.timings, self.losses))
        out.update(_placement_json(self.placement))
        out.update(_palette_json(self.mesh))
        return out

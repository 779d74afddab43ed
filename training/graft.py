"""Give a model another model's segmenter and inference settings: ``python -m training graft NEW.json
--segmenter-from OLD.json --set inversion.joint_plane_lr=0.02 --write STEM``.

The segmenter is trained on ray-traced chairs, not on the generator's renders, so a model with a retrained
generator and encoder can keep the segmenter of the model it replaces instead of training one again.
``--set SECTION.KEY=VALUE`` changes an inference setting (sections ``inversion``, ``pose``, ``mesh``,
``render``); the settings are range-checked before anything is written, and the written model is
loaded once as any model file is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.config import ModelConfig
from core.errors import ReconstructionError
from core.model import ReconstructionModel, load_model, save_model
from core.validate import check_model_config

from .evaluate import _setting

SETTING_SECTIONS = ("inversion", "pose", "mesh", "render")


def graft(model: str, write: Path, segmenter_from: str | None = None,
          settings: dict[str, object] | None = None) -> ReconstructionModel:
    """``model`` (name or .json path) with ``segmenter_from``'s segmenter and ``settings`` applied,
    written to ``write``."""
    base = load_model(model, "cpu")
    cfg = base.cfg.to_dict()
    for dotted, value in (settings or {}).items():
        section, _, key = dotted.partition(".")
        if section not in SETTING_SECTIONS or key not in cfg[section]:
            raise ValueError(f"--set {dotted}: not an inference setting (SECTION.KEY with SECTION one of "
                             f"{', '.join(SETTING_SECTIONS)})")
        cfg[section][key] = value
    donor = None
    if segmenter_from is not None:
        donor = load_model(segmenter_from, "cpu")
        if donor.segmenter is None:
            raise ValueError(f"{segmenter_from} has no segmenter to give")
        cfg["segmenter"] = donor.cfg.to_dict()["segmenter"]
    where = str(Path(write).with_suffix(".json"))
    out = ReconstructionModel(check_model_config(ModelConfig.from_dict(cfg, where), where))  # before writing
    state = base.state_dict()
    if donor is not None:
        state = {k: v for k, v in state.items() if not k.startswith("segmenter.")}
        state.update({k: v for k, v in donor.state_dict().items() if k.startswith("segmenter.")})
    out.load_state_dict(state)
    out.eval()
    card = dict(_card(model))
    if segmenter_from is not None and "segmenter" in _card(segmenter_from):
        card["segmenter"] = _card(segmenter_from)["segmenter"]  # how the kept segmenter was trained
    before = card.get("graft", {})  # a model grafted again keeps the record of the earlier grafts
    card["graft"] = {"segmenter_from": segmenter_from or before.get("segmenter_from"),
                     "settings": {**before.get("settings", {}), **(settings or {})}}
    save_model(out, Path(write), card)
    load_model(str(Path(write).with_suffix(".json")), "cpu")  # the written file passes the loader's checks
    return out


def _card(model: str) -> dict:
    path = Path(model)
    return json.loads(path.read_text()).get("card", {}) if path.suffix == ".json" and path.exists() else {}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This command's options (``python -m training graft --help``)."""
    ap.add_argument("model", help="model name or .json path whose generator and encoder are kept")
    ap.add_argument("--segmenter-from", default=None, help="model name or .json path that gives its segmenter")
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                    help="inference settings to change, e.g. inversion.joint_plane_lr=0.02")
    ap.add_argument("--write", required=True, help="stem of the written model, e.g. runs/model/chairs")


def run(args: argparse.Namespace) -> int:
    try:
        graft(args.model, Path(args.write), args.segmenter_from, dict(_setting(kv) for kv in args.set))
    except (ValueError, ReconstructionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model written: {args.write}.safetensors")
    return 0

#!/usr/bin/env bash
# Training/validation tooling only: never shipped, never needed by CI or `make test`.
# Creates Infinigen's own environment under runs/infinigen-venv: Python 3.11, infinigen 1.15.5 and
# the requirements it declares (bpy 4.2.0, numpy < 2, ...), all from binary wheels. Its declared
# scikit-image < 0.20 has no Python 3.11 wheel (a source build takes 25+ minutes on 2 cores and
# more on a busy machine); the seating factories run with the newest scikit-image wheel that
# accepts numpy < 2, so that one is installed instead. Does not touch .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${INFINIGEN_VENV:-runs/infinigen-venv}
PY=${PYTHON311:-python3.11}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip wheel setuptools
"$VENV/bin/python" -m pip install --no-deps "infinigen==1.15.5"
"$VENV/bin/python" -m pip install --only-binary=:all: "bpy==4.2.0" coacd "gin_config>=0.5.0" "imageio<2.32.0" \
  matplotlib networkx "numpy<2" "opencv-python<4.9.0" pandas psutil scikit-image "scikit-learn<1.4.0" scipy \
  "shapely<=2.0.5" tqdm "trimesh<3.23.0" OpenEXR submitit geomdl python-fcl rtree pillow
# make_training.py (generator training chairs): libigl for distances and closest points
"$VENV/bin/python" -m pip install --only-binary=:all: --no-deps "libigl==2.6.3"
"$VENV/bin/python" -c "import bpy, infinigen; print('bpy', bpy.app.version_string, 'infinigen', infinigen.__version__)"
"$VENV/bin/python" -c "import igl; from infinigen.assets.objects.seating import ChairFactory, OfficeChairFactory, BarChairFactory, ArmChairFactory"

#!/usr/bin/env bash
# A candidate on both sources of chairs: the shipped `chairs` model's generator trained on with 400 Infinigen
# training chairs (their real procedural materials) beside its 750 procedural ones, then its encoder, colour slots
# and settings, as recipe steps 19-22 did for the later families, and the segmenter fine-tuned on photo-like
# renders of the Infinigen training chairs. Nothing ships from here unless `make evaluate`
# with the candidate beats the shipped model (docs/TRAINING.md, "Shipping a model").
#
#     bash training/recipe_both.sh              # run or resume, from the repository root
#     DRY_RUN=1 bash training/recipe_both.sh    # print the steps only
#
# Environment: PYTHON (default .venv/bin/python), RUNS (default runs), WORKERS (Infinigen processes, default 2).
# A finished step leaves $RUNS/v012done/<step>; an interrupted one resumes from its checkpoint.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs}
WORKERS=${WORKERS:-2}
DONE=$RUNS/v012done
MODEL=$RUNS/model12/chairs
DRY_RUN=${DRY_RUN:-0}

step() {
    local name=$1
    shift
    if [[ -e $DONE/$name ]]; then echo "== $name: done"; return; fi
    echo "== $name $(date -u +%FT%T)"
    echo "+ $*"
    [[ $DRY_RUN == 1 ]] && return
    "$@"
    mkdir -p "$DONE"
    touch "$DONE/$name"
    echo "== $name finished $(date -u +%FT%T)"
}

GEN="--shapes 600 --extra-shapes 150 --batch 6 --points 3072 --seed 0 --threads 2 --render-weight 1"

# the Infinigen environment (bpy 4.2.0, its own numpy) and 400 training chairs (factory seeds 2000000-2000399)
step infinigen-env bash -c "test -x $RUNS/infinigen-venv/bin/python || training/infinigen/setup.sh"
step infinigen-chairs "$RUNS/infinigen-venv/bin/python" training/infinigen/make_training.py \
    --out "$RUNS/infinigen_train" --chairs 400 --workers "$WORKERS"
# the caches of the 750 procedural chairs and their codes fitted to the shipped generator (held fixed)
step A-codes "$PYTHON" -m training train-generator --out "$RUNS/both" $GEN --init chairs --fit-steps 5000 --iters 49000
# the Infinigen chairs' codes fitted (generator fixed), then 3000 steps on all 1150 chairs, 30% Infinigen per batch
step B-gen "$PYTHON" -m training train-generator --out "$RUNS/both" $GEN --infinigen "$RUNS/infinigen_train" \
    --infinigen-shapes 400 --infinigen-share 0.3 --fit-steps 3000 --iters 52000 --lr 5e-4 --schedule-from 49000
# the shipped encoder fine-tuned on renders of that generator (near its 1150 codes, photo-like, loose crops)
step C-enc "$PYTHON" -m training train-encoder --generator "$RUNS/both/generator.pt" --out "$RUNS/enc14" \
    --images 4000 --iters 4000 --batch 24 --seed 4 --threads 2 --init weights/chairs.json --code-share 0.8 \
    --photo-share 0.5 --wide-share 0.3 --write "$MODEL"
# the colour slots taught the parts again (procedural chairs only: Infinigen's have no named parts)
step D-slots "$PYTHON" -m training train-slots --model "$MODEL.json" --codes "$RUNS/both/generator.pt" \
    --write "$MODEL" --iters 6000 --batch 8 --points 4096 --weight 0.3 --lr 1e-3 --slot-hidden 64 --threads 2
# the shipped segmenter and settings
step E-graft "$PYTHON" -m training graft "$MODEL.json" --segmenter-from weights/chairs.json \
    --set inversion.joint_plane_lr=0.02 inversion.plane_steps=10 mesh.carve_px=0 --write "$MODEL"
# photo-like renders of the 400 training chairs (Cycles floors, walls, shadows), two halves at once
PHOTOS="$RUNS/infinigen-venv/bin/python training/infinigen/make_chairs.py --out $RUNS/infinigen_photos --first-seed 2000000"
step F-photos bash -c "nice -n 10 $PHOTOS --first 0 --chairs 230 --others 0 --threads 1 & a=\$!; \
    nice -n 10 $PHOTOS --first 230 --chairs 400 --others 0 --threads 1 & b=\$!; \
    wait \$a && wait \$b && $PHOTOS --chairs 400 --sheet"
# the segmenter fine-tuned with them: 30% of every batch from the photos
step G-seg "$PYTHON" -m training train-segmenter --model "$MODEL.json" --init --out "$RUNS/seg12" --images 2400 \
    --iters 2000 --batch 16 --lr 1e-3 --seed 1 --threads 2 --photos "$RUNS/infinigen_photos/cases.json" \
    --photos-share 0.3 --write "$MODEL"
echo "candidate: $MODEL.json + $MODEL.safetensors; measure it with make evaluate MODEL=$MODEL.json"

#!/usr/bin/env bash
# The recipe of the shipped `chairs` model: every training command that made weights/chairs.*, in order
# (docs/TRAINING.md explains them). About 413 + 78 minutes of generator (training + fitting codes), 239 minutes
# of encoder, 14 minutes of colour-slot and 49 minutes of segmenter training on 2 CPU cores, plus the caches
# and the final measurements.
#
#     bash training/recipe.sh              # run (or resume) the whole recipe from the repository root
#     DRY_RUN=1 bash training/recipe.sh    # print the steps and commands only
#
# Environment:
#   PYTHON   the interpreter (default .venv/bin/python; `make env` creates it)
#   RUNS     folder for checkpoints, caches and bootstrap renders (default runs, ignored by git)
#   MODEL    the model stem every encoder step writes and the next one starts from
#            (default $RUNS/model/chairs); to ship it, copy $MODEL.json and $MODEL.safetensors
#            to weights/
#
# Re-running resumes: a finished step is skipped (marker $RUNS/recipe/<step>.done), an interrupted one
# resumes from its last checkpoint (every 500 generator / 250 encoder steps). Two steps ran a longer
# schedule and were stopped after a checkpoint; `stop_at` reproduces that. Floating-point results
# depend on the machine and the torch build, so the weights match the shipped ones closely, not bit
# for bit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-$RUNS/model/chairs}
DONE=$RUNS/recipe
DRY_RUN=${DRY_RUN:-0}

train() { "$PYTHON" -m training "$@"; }

# show COMMAND...: the command as it runs
show() {
    if [[ $1 == train ]]; then
        shift
        echo "+ $PYTHON -m training $*"
    else
        echo "+ $*"
    fi
}

# step NAME COMMAND...: run COMMAND once; later runs of the recipe skip it.
step() {
    local name=$1
    shift
    finished "$name" && return
    echo "== $name"
    show "$@"
    [[ $DRY_RUN == 1 ]] && return
    "$@"
    mark_done "$name"
}

# finished NAME: true (and says so) when an earlier run of the recipe completed step NAME.
finished() {
    [[ -e $DONE/$1.done ]] || return 1
    echo "== $1: done"
}

# mark_done NAME: later runs of the recipe skip step NAME.
mark_done() {
    mkdir -p "$DONE"
    touch "$DONE/$1.done"
}

# iteration CHECKPOINT: the training iteration a generator checkpoint holds (0 when there is none).
iteration() {
    if [[ -e $1 ]]; then
        "$PYTHON" -c 'import sys, torch
print(int(torch.load(sys.argv[1], map_location="cpu", weights_only=True, mmap=True)["iteration"]))' "$1"
    else
        echo 0
    fi
}

# stop_at NAME CHECKPOINT ITERATION COMMAND...: run COMMAND until it has written CHECKPOINT at
# ITERATION, then stop it (the command's --iters is larger: its learning rate follows that schedule).
stop_at() {
    local name=$1 ckpt=$2 target=$3
    shift 3
    finished "$name" && return
    echo "== $name (stopped after its $target-step checkpoint)"
    show "$@"
    [[ $DRY_RUN == 1 ]] && return
    if [[ $1 == train ]]; then  # the background job must be the Python process itself, not a shell function
        shift
        set -- "$PYTHON" -m training "$@"
    fi
    local reached stamp pid
    reached=$(iteration "$ckpt")
    if ((reached < target)); then
        stamp=$(mktemp)
        "$@" &
        pid=$!
        trap 'kill "$pid" 2>/dev/null || true' EXIT INT TERM
        while kill -0 "$pid" 2>/dev/null; do
            sleep 5
            if [[ $ckpt -nt $stamp ]]; then  # a new checkpoint was written
                touch "$stamp"
                reached=$(iteration "$ckpt")
                if ((reached >= target)); then
                    kill "$pid"
                    break
                fi
            fi
        done
        wait "$pid" || true
        trap - EXIT INT TERM
        rm -f "$stamp"
        reached=$(iteration "$ckpt")
    fi
    if ((reached != target)); then
        echo "error: $ckpt holds iteration $reached, not $target; restore it or start the phase again" >&2
        exit 1
    fi
    mark_done "$name"
}

# new_phase FROM TO LINK...: a new run folder TO that starts from FROM's generator checkpoint and shares
# the caches LINK (paths relative to $RUNS) instead of building them again.
new_phase() {
    local from=$1 to=$2
    shift 2
    mkdir -p "$RUNS/$to"
    cp "$RUNS/$from/generator_ckpt.pt" "$RUNS/$to/"
    local link
    for link in "$@"; do
        ln -sfn "../$link" "$RUNS/$to/"
    done
}

# 1-2: generator (point losses; builds the 600-chair supervision cache), encoder bootstrapped from it
step 01-generator-7000 train train-generator --out "$RUNS/gen3" \
    --shapes 600 --iters 7000 --batch 6 --points 3072 --seed 0 --threads 2
step 02-encoder train train-encoder --generator "$RUNS/gen3/generator.pt" --out "$RUNS/enc3" \
    --images 1500 --iters 1500 --batch 24 --seed 0 --threads 2 --write "$MODEL"

# 3-8: the generator resumed for longer, the encoder fine-tuned on each longer-trained generator
step 03-generator-16000 train train-generator --out "$RUNS/gen3" \
    --shapes 600 --iters 16000 --batch 6 --points 3072 --seed 0 --threads 2
step 04-encoder train train-encoder --generator "$RUNS/gen3/generator.pt" --out "$RUNS/enc4" \
    --images 2000 --iters 2000 --batch 24 --seed 0 --threads 2 --init "$MODEL.json" --write "$MODEL"
step 05-generator-26000 train train-generator --out "$RUNS/gen3" \
    --shapes 600 --iters 26000 --batch 6 --points 3072 --seed 0 --threads 2
step 06-encoder train train-encoder --generator "$RUNS/gen3/generator.pt" --out "$RUNS/enc5" \
    --images 2500 --iters 2000 --batch 24 --seed 0 --threads 2 --init "$MODEL.json" --write "$MODEL"
stop_at 07a-generator-30000 "$RUNS/gen3/generator_ckpt.pt" 30000 \
    train train-generator --out "$RUNS/gen3" \
    --shapes 600 --iters 36000 --batch 6 --points 3072 --seed 0 --threads 2
step 07b-generator-34000 train train-generator --out "$RUNS/gen3" \
    --shapes 600 --iters 34000 --batch 6 --points 3072 --seed 0 --threads 2
step 08-encoder train train-encoder --generator "$RUNS/gen3/generator.pt" --out "$RUNS/enc6" \
    --images 3500 --iters 2500 --batch 24 --seed 0 --threads 2 --init "$MODEL.json" --write "$MODEL"

# 9: the silhouette rendering loss, on a copy of the 34000-step checkpoint (builds silhouettes.pt)
step 09a-copy-gen4r new_phase gen3 gen4r gen3/chairs_cache.pt
step 09b-generator-35000 train train-generator --out "$RUNS/gen4r" \
    --shapes 600 --iters 35000 --batch 6 --points 3072 --seed 0 --threads 2 --render-weight 1
stop_at 09c-generator-37000 "$RUNS/gen4r/generator_ckpt.pt" 37000 \
    train train-generator --out "$RUNS/gen4r" \
    --shapes 600 --iters 40000 --batch 6 --points 3072 --seed 0 --threads 2 --render-weight 1

# 10-11: a new learning-rate phase from 37000 to 40000, the encoder fine-tuned on it
step 10a-copy-gen5r new_phase gen4r gen5r gen3/chairs_cache.pt gen4r/silhouettes.pt
step 10b-generator-40000 train train-generator --out "$RUNS/gen5r" \
    --shapes 600 --iters 40000 --batch 6 --points 3072 --seed 0 --threads 2 \
    --lr 5e-4 --schedule-from 37000 --render-weight 1
step 11-encoder train train-encoder --generator "$RUNS/gen5r/generator.pt" --out "$RUNS/enc8" \
    --images 3000 --iters 2000 --batch 24 --seed 0 --threads 2 --init "$MODEL.json" --write "$MODEL"

# 12-13: another phase from 40000 to 43000, the encoder fine-tuned on renders near the training codes
step 12a-copy-gen6r new_phase gen5r gen6r gen3/chairs_cache.pt gen4r/silhouettes.pt
step 12b-generator-43000 train train-generator --out "$RUNS/gen6r" \
    --shapes 600 --iters 43000 --batch 6 --points 3072 --seed 0 --threads 2 \
    --lr 5e-4 --schedule-from 40000 --render-weight 1
step 13-encoder train train-encoder --generator "$RUNS/gen6r/generator.pt" --out "$RUNS/enc9" \
    --images 3000 --iters 2000 --batch 24 --seed 0 --threads 2 --init "$MODEL.json" --code-share 0.8 --write "$MODEL"

# 14-18: photo-like conditions for the encoder (backgrounds, floors and shadows, material textures,
# loose crops, 24-85 mm lenses); the codes are fitted to the model's generator (--init) as the
# shipped run did, then three fine-tunes, each from the model the previous step wrote, and the mean of the
# last two encoders
step 14-codes train train-generator --out "$RUNS/warm" --shapes 600 --iters 43000 --batch 6 --points 3072 \
    --seed 0 --threads 2 --init "$MODEL.json" --fit-steps 5000
step 15-encoder train train-encoder --generator "$RUNS/warm/generator.pt" --out "$RUNS/enc10" \
    --images 3000 --iters 2000 --batch 24 --seed 0 --threads 2 --init "$MODEL.json" --code-share 0.8 \
    --photo-share 0.5 --wide-share 0.3 --write "$MODEL"
step 16a-renders bash -c "mkdir -p '$RUNS/enc11' && cp '$RUNS/enc10/bootstrap_set.pt' '$RUNS/enc11/'"
step 16b-encoder train train-encoder --generator "$RUNS/warm/generator.pt" --out "$RUNS/enc11" \
    --images 3000 --iters 4000 --batch 24 --seed 1 --threads 2 --init "$MODEL.json" --code-share 0.8 \
    --photo-share 0.5 --wide-share 0.3 --write "$MODEL"
step 16c-keep bash -c "mkdir -p '$RUNS/enc11/model' && cp '$MODEL.json' '$MODEL.safetensors' '$RUNS/enc11/model/'"
step 17-encoder train train-encoder --generator "$RUNS/warm/generator.pt" --out "$RUNS/enc12" \
    --images 4000 --iters 4000 --batch 24 --seed 2 --threads 2 --init "$MODEL.json" --code-share 0.8 \
    --photo-share 0.5 --wide-share 0.3 --write "$MODEL"
step 18-average train average-encoders "$RUNS/enc11/model/$(basename "$MODEL").json" "$MODEL.json" --write "$MODEL"

# 18b: the colour slots learn the chairs' parts (seat, back, arms, frame) in a slot MLP of their own; the shape
# and the encoder stay as they are
step 18b-slots train train-slots --model "$MODEL.json" --codes "$RUNS/warm/generator.pt" --write "$MODEL" \
    --iters 6000 --batch 8 --points 4096 --weight 0.3 --lr 1e-3 --slot-hidden 64 --threads 2

# 18c: the foreground segmenter for photos without alpha, trained on ray-traced training chairs composited over
# photo-like surroundings; the rest of the model stays as it is
step 18c-segmenter train train-segmenter --model "$MODEL.json" --out "$RUNS/seg" --images 2400 --iters 2500 \
    --batch 16 --seed 0 --threads 2 --write "$MODEL"
step 18d-segmenter train train-segmenter --model "$MODEL.json" --out "$RUNS/seg" --images 2400 --iters 5000 \
    --batch 16 --seed 0 --threads 2 --write "$MODEL"

# 18e: the joint fit of several photos moves the triplane offset at its own rate
step 18e-settings train graft "$MODEL.json" --set inversion.joint_plane_lr=0.02 --write "$MODEL"

# 19-22 (v0.11): the generator widened with 150 chairs of the later families (backless stools, rocking and
# cantilever chairs; their codes fitted first with the generator frozen), the encoder fine-tuned on its renders,
# the colour slots taught again, then v0.10.1's segmenter and settings, and the photo's silhouette cutting the mesh
step 19a-keep-v0101 bash -c "mkdir -p '$RUNS/v0101' && cp '$MODEL.json' '$MODEL.safetensors' '$RUNS/v0101/'"
step 19b-copy-wide new_phase warm wide
step 19c-generator-49000 train train-generator --out "$RUNS/wide" --shapes 600 --extra-shapes 150 \
    --iters 49000 --batch 6 --points 3072 --seed 0 --threads 2 --lr 5e-4 --schedule-from 43000 \
    --render-weight 1 --fit-steps 2000
step 20-encoder train train-encoder --generator "$RUNS/wide/generator.pt" --out "$RUNS/enc13" --images 4000 \
    --iters 4000 --batch 24 --seed 3 --threads 2 --init "$MODEL.json" --code-share 0.8 --photo-share 0.5 \
    --wide-share 0.3 --write "$MODEL"
step 21-slots train train-slots --model "$MODEL.json" --codes "$RUNS/wide/generator.pt" --write "$MODEL" \
    --iters 6000 --batch 8 --points 4096 --weight 0.3 --lr 1e-3 --slot-hidden 64 --threads 2
step 22-settings train graft "$MODEL.json" --segmenter-from "$RUNS/v0101/$(basename "$MODEL").json" \
    --set inversion.joint_plane_lr=0.02 mesh.carve_px=0 --write "$MODEL"

# 22b (v0.11.1): a fit longer than 10 steps (Slow) moves the triplane offset only in its first 10 steps
step 22b-settings train graft "$MODEL.json" --set inversion.plane_steps=10 --write "$MODEL"

# measurements: how well the generator draws its own training chairs, and the model card's quality table
step 23-ceiling train ceiling "$RUNS/wide/generator_ckpt.pt"
step 24-evaluate train evaluate --model "$MODEL.json" --images 100 --steps 0 10 30

echo "model: $MODEL.json + $MODEL.safetensors (copy both to weights/ to ship it; docs/TRAINING.md)"

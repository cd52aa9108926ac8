#!/usr/bin/env bash
# The GPU recipe: every generative model of the course in one ~8-minute run on one GPU.
#
#   bash docs/gpu_recipe.sh OUT_DIR            # on a machine with a CUDA GPU, from the repo root
#
# A 2-core CPU trains the same `small` networks for hours (README, "Training on a CPU"); a GPU
# trains them on ~10x more fresh clips in minutes. Small models leave a big GPU mostly idle, so
# the runs of each phase share it side by side:
#
#   phase 1 (PHASE1_MINUTES, 3):   vqvae-compact, vqvae-compact-t2, cogview
#   phase 2 (PHASE2_MINUTES, 3.5): videogpt-compact on each tokenizer, cogvideo-keyframes and
#                                  cogvideo-interp on the new cogview (frozen)
#   phase 3 (PHASE3_MINUTES, 3.8): the two priors again from scratch, two to the GPU instead of
#                                  four (the shipped videogpt is phase 3's videogpt-compact-t2;
#                                  PHASE3_MINUTES=0 skips it)
#
# Phase 2 reads its tokenizers and CogView by name, so phase 1's exports are copied into
# checkpoints/ in between: run this in a checkout you may overwrite. Every run writes its
# resumable checkpoint and log to OUT_DIR, and its weights-only export (float16) and
# manifest to OUT_DIR/ck. `--minutes` sets each schedule's length from the measured speed, so
# the learning rate decays in time on any GPU. The held-out figures are measured afterwards on
# the CPU (python -m minivideo eval videogpt / cogvideo).
set -uo pipefail
out=${1:?usage: bash docs/gpu_recipe.sh OUT_DIR}
m1=${PHASE1_MINUTES:-3}
m2=${PHASE2_MINUTES:-3.5}
m3=${PHASE3_MINUTES:-3.8}
config=${CONFIG:-full}  # CONFIG=tiny PHASE1_MINUTES=0.2 ... tries the script on a CPU
py=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
mkdir -p "$out/ck"

train() {  # train NAME MINUTES [options]: one run, its log in OUT_DIR/NAME.log
    local name=$1 minutes=$2
    shift 2
    "$py" -m minivideo train "$name" --config "$config" --minutes "$minutes" --no-eval \
        --save-every 1000 --eval-every 500 --out "$out/$name.pt" --export "$out/ck/$name.pt" \
        "$@" >"$out/$name.log" 2>&1
    echo "$name: exit $? after $SECONDS s; $(grep -o 'wrote .* at step [0-9]*.*' "$out/$name.log" | head -1)"
}

echo "phase 1 at $(date +%T): tokenizers and CogView, $m1 min each"
train vqvae-compact "$m1" --workers 3 --export-half &
train vqvae-compact-t2 "$m1" --workers 3 --export-half &
train cogview "$m1" --workers 2 --export-half &
wait
for name in vqvae-compact vqvae-compact-t2 cogview; do
    cp "$out/ck/$name.pt" "$out/ck/$name.json" checkpoints/ || echo "no $name for phase 2"
done

echo "phase 2 at $(date +%T): priors and CogVideo stages, $m2 min each"
train videogpt-compact "$m2" --workers 3 --export-half &
train videogpt-compact-t2 "$m2" --workers 3 --export-half &
train cogvideo-keyframes "$m2" --workers 2 --export-half &
train cogvideo-interp "$m2" --workers 2 --export-half &
wait
if [ "$m3" != 0 ]; then
    echo "phase 3 at $(date +%T): the priors alone, $m3 min each"
    mkdir -p "$out/phase3/ck"
    for name in videogpt-compact videogpt-compact-t2; do
        out="$out/phase3" train "$name" "$m3" --workers 4 --export-half &
    done
    wait
fi
echo "done at $(date +%T)"

"""Ship the two stages of layered text → video as checkpoints, with manifests.

Round seven's stages were trained by the registered targets themselves (their manifests hold the
exact command); round six's by `docs/temporal_levers.py train layer-copyt` and `... layer
--stage interp`, whose manifests get the registered command that repeats the run
(`cogvideo-layer-keyframes` and `cogvideo-layer-interp` build the same model, initial weights,
clips and, with the steps the time budget set, schedule) and the lever command in the notes.
This script copies the weights (no optimiser state) into checkpoints/, writes each manifest with
its minutes and device, then measures the held-out figures the train command's manifests hold
(`evaluate_keyframes`, `evaluate_interpolation`):

    python docs/ship_layers.py runs/s32/keys.pt runs/s32/interp.pt          # round seven
    python docs/ship_layers.py runs/s31/layer-copyt.pt runs/s31/layer-interp.pt  # round six
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from minivideo.checkpoints import add_metrics, export_weights, load_checkpoint, write_manifest
from minivideo.metrics.cogvideo_quality import evaluate_interpolation, evaluate_keyframes
from minivideo.pretrained import checkpoints_dir, pretrained, tokenizer_record

STAGES = (  # (shipped name, docs/temporal_levers.py variant, its --stage, evaluation)
    ("cogvideo-layer-keyframes", "layer-copyt", "keyframes", evaluate_keyframes),
    ("cogvideo-layer-interp", "layer", "interp", evaluate_interpolation),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keyframes", type=Path, help="the key-frame run (target or lever)")
    parser.add_argument("interp", type=Path, help="the interpolation run (target or lever)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for (name, variant, stage, evaluate), run in zip(STAGES, (args.keyframes, args.interp),
                                                      strict=True):
        payload = load_checkpoint(run)
        manifest = json.loads(run.with_suffix(".json").read_text())
        minutes, step = payload["train_config"]["minutes"], payload["step"]
        if payload["model_config"]["digits"] != 1 or payload["model_config"]["stage"] != stage:
            parser.error(f"{run} is not a {stage} stage of one digit")
        target = checkpoints_dir() / f"{name}.pt"
        export_weights(run, target)
        recorded = manifest["command"].split()
        keep = (f" --keep-every {recorded[recorded.index('--keep-every') + 1]}"
                if "--keep-every" in recorded else "")
        if recorded[:5] == ["python", "-m", "minivideo", "train", name]:
            command, notes = manifest["command"], manifest["notes"]  # the registered target ran
        else:  # the lever script ran
            ran = (f"python docs/temporal_levers.py train {variant}"
                   f"{' --stage interp' if stage == 'interp' else ''} --minutes {minutes:g}"
                   f"{keep} --threads 1 --out {run}")
            # the registered target builds the same model (config and initial weights), the
            # same fresh clips and, with the steps its time budget set, the same schedule
            command = (f"python -m minivideo train {name} --config small --steps {step} "
                       f"--threads 1 --bf16 --save-every 500{keep} --no-eval --out {run}")
            notes = (f"{manifest['notes']}; clips of one digit (layers). Trained as `{ran}` "
                     f"(its {minutes:g}-minute budget set {step} steps), which builds the same "
                     "model, initial weights and training clips as the command above")
        # both rounds trained with --bf16, which the train manifests record only in the command
        write_manifest(
            target, command=command, data_seed=manifest["data_seed"],
            train_seconds=manifest["train_seconds"], device=manifest["device"] + ", bf16",
            metrics={}, tokenizer=tokenizer_record("vqvae-frame-empty"),
            notes=notes)
        model = pretrained(name)
        add_metrics(target, evaluate(model),
                    command="python docs/ship_layers.py " + " ".join(
                        sys.argv[1:] if argv is None else argv),
                    device=f"cpu ({args.threads} threads)")
        print(f"shipped {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

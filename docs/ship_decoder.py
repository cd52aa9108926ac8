"""Ship a tokenizer whose decoder was fine-tuned with its codes frozen, and re-pair its priors.

`docs/decoder_finetune.py --export FILE` writes a tokenizer that encodes every clip to exactly
the codes of the shipped one (its encoder and codebook are the same weights) and decodes them
differently. Every prior trained on the shipped tokenizer therefore stays valid, but its manifest
records the tokenizer's sha256 and loading refuses a mismatch. This script:

1. copies FILE over checkpoints/NAME.pt, after checking that it gives the shipped file's codes
   on 64 test clips;
2. rewrites NAME.json: new hash and size, the decoder fine-tune appended to `command` (the
   shipped tokenizer's own command first, so its history stays readable), its minutes and device,
   a note; the figures are then re-measured by the `--evaluate-only` command it prints;
3. re-pairs every shipped prior whose manifest names NAME (`tokenizer` record), with a note.

    python docs/ship_decoder.py vqvae-compact-t2 runs/vqvae-compact-t2-gan.pt \
        --finetune docs/figures/decoder_gan.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import torch

from minivideo.checkpoints import _git_commit, build_model_from_checkpoint, sha256_file
from minivideo.metrics.reconstruction import test_clips
from minivideo.pretrained import checkpoints_dir, pretrained, tokenizer_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the shipped tokenizer, e.g. vqvae-compact-t2")
    parser.add_argument("file", type=Path, help="the fine-tuned tokenizer (--export of "
                        "docs/decoder_finetune.py)")
    parser.add_argument("--finetune", type=Path, required=True,
                        help="the JSON docs/decoder_finetune.py wrote for that file")
    args = parser.parse_args(argv)
    folder = checkpoints_dir()
    target, manifest_file = folder / f"{args.name}.pt", folder / f"{args.name}.json"
    if not manifest_file.is_file():
        parser.error(f"name must be a shipped tokenizer in {folder}, got {args.name!r}")
    run = json.loads(args.finetune.read_text())
    shipped, new = pretrained(args.name), build_model_from_checkpoint(args.file).eval()
    video = test_clips(64, 16)["video"]
    if not torch.equal(shipped.encode(video), new.encode(video)):
        raise SystemExit(f"{args.file} does not give {args.name}'s codes: it is a new tokenizer, "
                         "and its priors must be retrained, not re-paired")
    shutil.copyfile(args.file, target)
    manifest = json.loads(manifest_file.read_text())
    manifest.update(
        sha256=sha256_file(target), size_bytes=target.stat().st_size,
        command=f"{manifest['command']} && {run['command']}",
        train_seconds=round(manifest["train_seconds"] + run["train_minutes"] * 60, 1),
        device=f"{manifest['device']}; the decoder fine-tune: {run['device']}",
        git_commit=_git_commit(),
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        decoder_finetune={k: run[k] for k in ("command", "steps", "clips", "train_minutes",
                                              "device", "codes_unchanged")},
        notes=(manifest.get("notes", "") + f"; decoder fine-tuned with a patch critic, codes "
               f"frozen ({run['steps']} steps × {run['clips'] // run['steps']} fresh clips, "
               f"{run['train_minutes']} min): every clip encodes to the same codes"))
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
    record = tokenizer_record(args.name)
    repaired = []
    for path in sorted(folder.glob("*.json")):
        prior = json.loads(path.read_text())
        if prior.get("tokenizer", {}).get("name") == args.name:
            prior["tokenizer"] = record
            prior["notes"] = (prior.get("notes", "") + f"; re-paired with {args.name} after its "
                              "decoder fine-tune (same codes, sharper decoder)")
            path.write_text(json.dumps(prior, indent=2) + "\n")
            repaired.append(path.stem)
    print(f"shipped {target} ({record['sha256'][:12]}), re-paired: {', '.join(repaired)}")
    print(f"now: python -m minivideo train {args.name} --config full --threads 1 "
          f"--evaluate-only --out {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Key frames by move search (`minivideo.models.cogvideo.search`), measured.

A key-frame stage trained on slow compass clips (one cell per key frame, `docs/temporal_levers.py
train compass2-offsets10-copyt`) is used two ways: drawing every key frame code by code (the
pipeline), or drawing the first and then choosing, per key frame, one move of each digit among
the rigid shifts its own log-likelihood scores best. Two measurements:

* ``moves``: on real test clips, given the real key frames so far, does the stage's best-scored
  proposal equal the *oracle* one (the proposal that agrees with the real next key frame in the
  most cells)? Under the true caption, under the caption's directions turned around, and
  without a caption: how much of the choice the caption makes.
* ``judge``: text → video on prompts of test clips (or held-out prompts), key frames drawn or
  searched, the same interpolation stage, read by the judge; beside the real clips (the ceiling).

The stages (53 CPU-minutes each, one core each, side by side):

    python docs/temporal_levers.py train compass2-offsets10-copyt --minutes 45 \
        --keep-every 1000 --out runs/s29/copyt.pt
    python docs/temporal_levers.py train compass2-offsets10 --stage interp --minutes 45 \
        --keep-every 1000 --out runs/s29/interp.pt

The figures (README, notebook 08):

    python docs/move_search.py moves runs/s29/copyt.pt --clips 32 --guidance 1 \
        --out docs/figures/move_search_moves.json
    python docs/move_search.py moves runs/s29/copyt.pt --clips 32 --guidance 3 \
        --out docs/figures/move_search_moves_w3.json
    python docs/move_search.py judge runs/s29/copyt.pt --interp runs/s29/interp.pt \
        --prompts 32 --out docs/figures/move_search_judge.json
    python docs/move_search.py judge runs/s29/copyt.pt --prompts 32 \
        --out docs/figures/move_search_judge_shipped_interp.json
    python docs/move_search.py judge runs/s29/copyt.pt --prompts 32 --held-out \
        --out docs/figures/move_search_judge_held_out.json
    python docs/move_search.py figure runs/s29/copyt.pt --prompts 4 \
        --out docs/figures/move_search_keyframes.png

``moves`` also scores each digit's cells (the cells its blob leaves and enters) under that digit's
own clause, with the binding of blobs to digits read off the real clip: what a sampler that knew
which blob is which digit could reach with this stage.

Round five: the same stage with its pointer's tables bound to digits (``pointer="bound"``, each
source cell weighs each clause's tables by which clause's digit drew it), trained for the same
minutes beside a fresh slow-clip interpolation stage. ``binding`` reads its digit reader on real
clips: of the ink cells copied from, how many weigh most the clause of the nearest digit.

    python docs/temporal_levers.py train compass2-offsets10-copyb --minutes 45 \
        --keep-every 1000 --out runs/s30/copyb.pt
    python docs/temporal_levers.py train compass2-offsets10 --stage interp --minutes 45 \
        --keep-every 1000 --out runs/s30/interp.pt
    python docs/move_search.py moves runs/s30/copyb.pt --clips 32 --guidance 1 \
        --out docs/figures/bound_pointer_moves.json
    python docs/move_search.py moves runs/s30/copyb-step00{1,2}000.pt --clips 32 --guidance 1 \
        --out docs/figures/bound_pointer_moves_curve.json
    python docs/move_search.py binding runs/s30/copyb-step00{1,2,3}000.pt runs/s30/copyb.pt \
        --clips 64 --out docs/figures/bound_pointer_binding.json
    python docs/temporal_levers.py evaluate runs/s30/copyb.pt \
        --out docs/figures/bound_pointer_bits.json
    python docs/move_search.py judge runs/s30/copyb.pt --interp runs/s30/interp.pt \
        --prompts 32 --out docs/figures/bound_pointer_judge.json  (and --held-out:
        bound_pointer_judge_held_out.json)
    python docs/move_search.py figure runs/s30/copyb.pt --prompts 4 \
        --out docs/figures/bound_pointer_keyframes.png

``chain`` follows the directions link by link (real clips; their real key frames held, then
interpolated; the real first key frame, then moves chosen by the most cells agreeing with the
real next key frame, by each digit's true move (as code blobs, or composed in pixels), by the
stage's search, or drawn key frames):

    python docs/move_search.py chain runs/s30/copyb.pt --interp runs/s30/interp.pt \
        --prompts 32 --out docs/figures/direction_chain.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

sys.path.insert(0, str(Path(__file__).resolve().parent))
from temporal_levers import _prompts, judged, load, write_rows  # noqa: E402

from minivideo.checkpoints import load_checkpoint  # noqa: E402
from minivideo.data.moving_mnist import KING_MOVES  # noqa: E402
from minivideo.metrics.captions import caption_accuracy  # noqa: E402
from minivideo.metrics.cogvideo_quality import (  # noqa: E402
    _ids,
    evaluate_text_to_video,
    motion_caption,
    reverse_directions,
)
from minivideo.models.cogvideo import (  # noqa: E402
    KEYFRAME_STRIDE,
    interpolate,
    sample_keyframes,
    tokenizer_of,
    video_sequence,
)
from minivideo.models.cogvideo.pointer import clause_digits  # noqa: E402
from minivideo.models.cogvideo.search import (  # noqa: E402
    blobs,
    candidate_log_likelihood,
    proposals,
    search_keyframes,
)
from minivideo.pretrained import pretrained  # noqa: E402
from minivideo.utils import to_uint8  # noqa: E402
from minivideo.viz import save_frame_strip  # noqa: E402


@torch.no_grad()
def move_accuracy(path: Path, num_clips: int, guidance: float) -> dict:
    """How often the stage's best-scored move is the oracle's, per caption variant; and each
    blob's move against its digit's true displacement (in whole cells)."""
    model = load(load_checkpoint(path))
    clips, captions = _prompts(model, num_clips)
    keys = clips.codes[:, ::KEYFRAME_STRIDE].long()
    texts = {"true": captions}
    texts["reversed"] = [reverse_directions(t) for t in texts["true"]]
    texts["none"] = ["" for _ in texts["true"]]
    # each digit's own clause ("digit 3 moves left then up"), for the bound scores below
    clauses = [[motion_caption(clips.digits[i][[k]], clips.directions[i, :-1][:, [k]])
                for k in range(clips.digits.shape[1])] for i in range(num_clips)]
    hits = {name: 0 for name in [*texts, "bound"]}
    blob_hits = {name: 0 for name in hits}
    first_hits: dict[str, float] = {}
    moved = total = blob_total = rule_hits = rule_first = true_total = true_oracle = 0
    true_hits = {name: 0 for name in hits}
    for t in range(1, keys.shape[1]):
        labels = [blobs(k) for k in keys[:, t - 1].numpy()]
        options = [proposals(k, lab) for k, lab in zip(keys[:, t - 1].numpy(), labels,
                                                         strict=True)]
        counts = torch.tensor([len(frames) for frames, _ in options])
        owner = torch.repeat_interleave(torch.arange(num_clips), counts)
        candidates = torch.from_numpy(np.concatenate([frames for frames, _ in options]))
        # the oracle: the proposal that agrees with the real next key frame in the most cells
        agree = (candidates == keys[owner, t]).flatten(1).sum(1)
        ends = counts.cumsum(0)
        oracle = [int(agree[e - n : e].argmax()) for e, n in zip(ends, counts, strict=True)]
        moved += sum(any(m != (0, 0) for m in options[i][1][j]) for i, j in enumerate(oracle))
        total += num_clips
        blob_total += sum(len(options[i][1][j]) for i, j in enumerate(oracle))
        true = [cell_moves(blob_shifts(clips, i, t, labels[i])) for i in range(num_clips)]
        true_total += sum(map(len, true))
        true_oracle += sum(x == y for i, j in enumerate(oracle)
                           for x, y in zip(options[i][1][j], true[i], strict=True))
        for i, j in enumerate(oracle):  # the rule: each blob moves as its digit's velocity says
            rule = [tuple(int(v) for v in KING_MOVES[clips.directions[i, (t - 1) * KEYFRAME_STRIDE,
                                                                    k]])
                    for k in nearest_slots(clips, i, t, labels[i])]
            right = sum(r == o for r, o in zip(rule, options[i][1][j], strict=True))
            rule_hits += right
            if t == 1:
                rule_first += right
        scores = {name: candidate_log_likelihood(model, _ids(captions), keys[:, :t],
                                                 candidates, owner,
                                                 guidance=1.0 if name == "none" else guidance)
                  for name, captions in texts.items()}
        scores["bound"] = bound_scores(model, clips, keys, t, labels, options, candidates,
                                       owner, clauses, guidance)
        for name, score in scores.items():
            best = [int(score[e - n : e].argmax()) for e, n in zip(ends, counts, strict=True)]
            hits[name] += sum(b == o for b, o in zip(best, oracle, strict=True))
            right = sum(  # each digit's move on its own
                x == y for i, (b, o) in enumerate(zip(best, oracle, strict=True))
                for x, y in zip(options[i][1][b], options[i][1][o], strict=True))
            blob_hits[name] += right
            true_hits[name] += sum(x == y for i, b in enumerate(best)
                                   for x, y in zip(options[i][1][b], true[i], strict=True))
            if t == 1:  # the first move: the one the caption's first words name
                first_total = sum(len(options[i][1][j]) for i, j in enumerate(oracle))
                first_hits[name] = right / first_total
    return {"checkpoint": str(path), "clips": num_clips, "choices": total,
            "oracle_moves_a_digit": round(moved / total, 4), "guidance": guidance,
            **{f"best_is_oracle_{name}_caption": round(h / total, 4) for name, h in hits.items()},
            **{f"blob_move_is_oracle_{name}_caption": round(h / blob_total, 4)
               for name, h in blob_hits.items()},
            **{f"first_blob_move_is_oracle_{name}_caption": round(h, 4)
               for name, h in first_hits.items()},
            "blob_move_is_oracle_velocity_rule": round(rule_hits / blob_total, 4),
            "first_blob_move_is_oracle_velocity_rule": round(rule_first / first_total, 4),
            **{f"blob_move_is_true_{name}_caption": round(h / true_total, 4)
               for name, h in true_hits.items()},
            "blob_move_is_true_oracle": round(true_oracle / true_total, 4)}


def nearest_slots(clips, i: int, t: int, blob: np.ndarray) -> list[int]:
    """For each blob of clip i's key frame t − 1 (labels 1, 2, ...), the digit slot whose centre
    is nearest: the true binding of blobs to digits, read off the real clip."""
    centres = (clips.positions[i, (t - 1) * KEYFRAME_STRIDE] + 14) / 8 - 0.5  # in cells
    return [int(np.argmin(((centres - np.argwhere(blob == b + 1).mean(0)) ** 2).sum(1)))
            for b in range(blob.max())]


def blob_shifts(clips, i: int, t: int, blob: np.ndarray) -> np.ndarray:
    """Each blob's true shift (blobs, 2) in pixels over key-frame step t: the displacement of
    its nearest digit (`nearest_slots`) from key frame t − 1 to t."""
    step = clips.positions[i, t * KEYFRAME_STRIDE] - clips.positions[i, (t - 1) * KEYFRAME_STRIDE]
    return step[nearest_slots(clips, i, t, blob)].reshape(-1, 2)


def cell_moves(shifts: np.ndarray) -> tuple:
    """Shifts (blobs, 2) in pixels → one (dy, dx) move in whole 8-px cells per blob, as
    `proposals` names them."""
    return tuple(tuple(int(v) for v in np.rint(shift / 8)) for shift in shifts)


def bound_scores(model, clips, keys: torch.Tensor, t: int, labels: list[np.ndarray],
                 options: list, candidates, owner: torch.Tensor, clauses: list[list[str]],
                 guidance: float) -> torch.Tensor:
    """Each candidate scored digit by digit: the cells a blob leaves and enters, under the
    clause of the digit nearest that blob (the true binding, read off the real clip): what a
    sampler that knew which blob is which digit could reach with this stage."""
    per_slot = [candidate_log_likelihood(
        model, _ids([c[k] for c in clauses]), keys[:, :t], candidates, owner,
        guidance=guidance, per_cell=True) for k in range(len(clauses[0]))]
    out, j = torch.zeros(len(candidates)), 0
    for i, ((_, moves), blob) in enumerate(zip(options, labels, strict=True)):
        slot = nearest_slots(clips, i, t, blob)
        for combo in moves:
            for b, (dy, dx) in enumerate(combo):
                ys, xs = np.nonzero(blob == b + 1)
                region = np.zeros(blob.shape, dtype=bool)
                region[ys, xs] = region[ys + dy, xs + dx] = True
                out[j] += per_slot[slot[b]][j][torch.from_numpy(region.flatten())].sum()
            j += 1
    return out


@torch.no_grad()
def binding_accuracy(path: Path, num_clips: int) -> dict:
    """A bound pointer's digit reader (`CopyPointer.binding`) on real test clips: of the ink cells
    of key frames 0-3 (the cells copied from), how many weigh most the clause of the digit whose
    centre is nearest? Two-digit clips of two different digits only; chance is 50%."""
    model = load(load_checkpoint(path))
    if model.pointer is None or model.pointer.binder is None:
        raise ValueError(f"path must hold a stage with pointer='bound', got {path}")
    base = model.config.base
    clips, captions = _prompts(model, num_clips)
    keys = clips.codes[:, ::KEYFRAME_STRIDE].long()
    sequence = video_sequence(model.config, _ids(captions), KEYFRAME_STRIDE, keys)
    hidden = model.base.norm(model.trunk(sequence))
    digits = clause_digits(sequence[:, : base.text_len], base.num_codes)[1]
    weights = model.pointer.binding(hidden, digits)[..., 1:]  # (b n clauses)
    grid, right, total = base.grid, 0, 0
    cells = np.stack(np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij"), -1) + 0.5
    for i in range(num_clips):
        if digits[i, 1] < 0 or digits[i, 2] >= 0 or digits[i, 0] == digits[i, 1]:
            continue
        for f in range(keys.shape[1] - 1):
            centres = (clips.positions[i, f * KEYFRAME_STRIDE] + 14) / 8  # in cells
            nearest = ((cells[:, :, None] - centres) ** 2).sum(-1).argmin(-1)  # (h w): slot
            start = base.text_len + 1 + f * base.frame_len + 1  # the token holding code 0
            read = weights[i, start : start + grid**2, :2].argmax(-1).reshape(grid, grid)
            ink = keys[i, f] != 0
            right += int((read.numpy() == nearest)[ink.numpy()].sum())
            total += int(ink.sum())
    return {"checkpoint": str(path), "clips": num_clips, "ink_cells": total,
            "binder_reads_the_nearest_digit": round(right / max(total, 1), 4)}


def oracle_keyframes(keys: torch.Tensor) -> torch.Tensor:
    """Key frames (b, f, h, w) made by move search with a perfect scorer: from the real first
    one, each next key frame is the proposal that agrees with the real one in the most cells
    (the best move search can do, given its blobs and one-cell moves)."""
    made = [keys[:, 0].numpy()]
    for t in range(1, keys.shape[1]):
        chosen = []
        for i, last in enumerate(made[-1]):
            frames, _ = proposals(last, blobs(last))
            agree = (frames == keys[i, t].numpy()).reshape(len(frames), -1).sum(1)
            chosen.append(frames[int(agree.argmax())])
        made.append(np.stack(chosen))
    return torch.from_numpy(np.stack(made, 1)).long()


def true_move_keyframes(clips, keys: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Key frames (b, f, h, w) made by moving each blob by its digit's true displacement over
    the key-frame step (in whole cells), from the real first key frame; where no proposal holds
    the true moves (digits that cross, or one blob holding both), nothing moves. And the number
    of such steps."""
    made, missing = [keys[:, 0].numpy()], 0
    for t in range(1, keys.shape[1]):
        chosen = []
        for i, last in enumerate(made[-1]):
            labels = blobs(last)
            frames, moves = proposals(last, labels)
            true = cell_moves(blob_shifts(clips, i, t, labels))
            missing += true not in moves
            still = tuple((0, 0) for _ in true)
            chosen.append(frames[moves.index(true if true in moves else still)])
        made.append(np.stack(chosen))
    return torch.from_numpy(np.stack(made, 1)).long(), missing


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image (H, W) moved dy pixels down and dx right, with black coming in at the edges."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        image[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


@torch.no_grad()
def pixel_true_move_keyframes(clips, keys: torch.Tensor, tokenizer,
                              whole_cells: bool) -> torch.Tensor:
    """Key frames (b, f, h, w) made in pixels: from the real first key frame, each blob of the
    last key frame is decoded apart, moved by its digit's true displacement (rounded to whole
    cells, or exact), the digits laid over each other (max) and the frame re-encoded. Digits may
    cross here, which code-blob proposals forbid."""
    made = [keys[:, 0]]
    for t in range(1, keys.shape[1]):
        frames = []
        for i, last in enumerate(made[-1].numpy()):
            labels = blobs(last)
            parts = np.stack([np.where(labels == k, last, 0) for k in
                              range(1, labels.max() + 1)] or [last])
            images = tokenizer.decode(torch.from_numpy(parts)[:, None])[:, 0].numpy()
            moved = [images[0] * 0]
            for image, shift in zip(images, blob_shifts(clips, i, t, labels), strict=False):
                dy, dx = np.rint(shift / 8) * 8 if whole_cells else np.rint(shift)
                moved.append(_shifted(image, int(dy), int(dx)))
            frames.append(np.clip(np.max(moved, 0), 0, 1))
        video = torch.from_numpy(np.stack(frames)).float()[:, None]
        made.append(tokenizer.encode(video)[:, 0].long())
    return torch.stack(made, 1)


@torch.no_grad()
def direction_chain(path: Path, interp: Path | None, num_prompts: int, guidance: float) -> dict:
    """Where the prompt's directions are lost, link by link: the judge on real clips; on their
    real key frames, each held for four frames (no interpolation); on real key frames filled in
    by the interpolation stage; and on the real first key frame with the later ones chosen by
    the most cells agreeing (`oracle_keyframes`), by each digit's true move
    (`true_move_keyframes`; or in pixels, `pixel_true_move_keyframes`), by move search or drawn
    by the stage, then filled in."""
    model = load(load_checkpoint(path))
    middles = pretrained("cogvideo-interp") if interp is None else load(load_checkpoint(interp))
    judge, tokenizer = pretrained("judge"), tokenizer_of(model)
    clips, captions = _prompts(model, num_prompts)
    keys = clips.codes[:, ::KEYFRAME_STRIDE].long()

    def read(codes: torch.Tensor) -> dict:
        video = torch.from_numpy(to_uint8(tokenizer.decode(codes)))
        return {k: round(v, 4) for k, v in caption_accuracy(judge, video, captions).items()}

    def filled(made: torch.Tensor) -> dict:  # key frames filled in by the interpolation stage
        return read(interpolate(middles, _ids(captions), made, guidance=guidance, seed=0))

    def held(made: torch.Tensor) -> dict:  # key frames, each shown for four frames
        return read(made.repeat_interleave(KEYFRAME_STRIDE, 1)[:, : clips.codes.shape[1]])

    true, missing = true_move_keyframes(clips, keys)
    out = {"checkpoint": str(path), "interp": str(interp or "shipped"), "prompts": num_prompts,
           "guidance": guidance, "real_clips": read(clips.codes.long()),
           "real_keyframes_held": held(keys), "real_keyframes_interpolated": filled(keys),
           "real_first_keyframe_then_oracle_moves": filled(oracle_keyframes(keys)),
           "real_first_keyframe_then_true_moves": filled(true), "true_moves_held": held(true),
           "steps_whose_true_move_is_not_proposed": round(missing / (len(keys) * 4), 4)}
    for whole_cells in (True, False):
        made = pixel_true_move_keyframes(clips, keys, tokenizer, whole_cells)
        name = "in_whole_cells" if whole_cells else "exact"
        out[f"true_moves_{name}_composed_in_pixels"] = filled(made)
        out[f"true_moves_{name}_composed_in_pixels_held"] = held(made)
    for search in (True, False):
        name = "searched" if search else "drawn"
        out[f"real_first_keyframe_then_{name}"] = {
            k.removeprefix("t2v_caption_"): v for k, v in evaluate_text_to_video(
                model, middles, judge, num_prompts, guidance=guidance, given=keys[:, :1],
                search=search).items() if k.startswith("t2v_caption_")}
    return out


def keyframe_figure(path: Path, num_prompts: int, guidance: float, out: Path) -> dict:
    """Key frames of test prompts: the real ones, drawn code by code, and by move search."""
    model = load(load_checkpoint(path))
    clips, captions = _prompts(model, num_prompts)
    drawn = sample_keyframes(model, _ids(captions), guidance=guidance, seed=0)
    searched, moves = search_keyframes(model, _ids(captions), guidance=guidance, seed=0)
    names = ("real", "drawn", "move search")
    # rows by prompt: its real key frames, then the drawn ones, then the searched ones
    codes = rearrange([clips.codes[:, ::KEYFRAME_STRIDE].long(), drawn, searched],
                      "kind b t h w -> (b kind) t h w")
    save_frame_strip(tokenizer_of(model).decode(codes), out,
                     titles=[f"{i}: {name}" for i in range(num_prompts) for name in names])
    return {"prompts": captions, "moves": [[list(map(list, m)) for m in clip] for clip in moves],
            "png": str(out)}


def _command(commands, name: str, help: str, prompts: int = 0) -> argparse.ArgumentParser:
    """A command measuring checkpoints on test clips (--clips, 64) or their prompts (--prompts),
    writing JSON rows to --out."""
    command = commands.add_parser(name, help=help)
    command.add_argument("checkpoints", nargs="+", type=Path)
    command.add_argument("--prompts" if prompts else "--clips", type=int,
                         default=prompts or 64)
    command.add_argument("--out", type=Path, required=True)
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    moves = _command(commands, "moves", "the stage's move choices against the oracle's")
    moves.add_argument("--guidance", type=float, default=3.0)
    _command(commands, "binding", "a bound pointer's digit reader on real clips")
    chain = _command(commands, "chain", "where the directions are lost, link by link", 32)
    read = _command(commands, "judge", "text → video, key frames drawn and searched", 32)
    for command in (chain, read):
        command.add_argument("--interp", type=Path,
                             help="an interpolation stage (default: shipped)")
        command.add_argument("--guidance", type=float, default=3.0)
    read.add_argument("--held-out", action="store_true")
    show = commands.add_parser("figure", help="real, drawn and searched key frames, as a PNG")
    show.add_argument("checkpoint", type=Path)
    show.add_argument("--prompts", type=int, default=4)
    show.add_argument("--guidance", type=float, default=3.0)
    show.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "figure":  # the prompts and moves beside the picture, as JSON
        shown = keyframe_figure(args.checkpoint, args.prompts, args.guidance, args.out)
        command = "python docs/move_search.py " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.with_suffix(".json").write_text(
            json.dumps({"command": command, **shown}, indent=2) + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
        return 0
    rows = []
    for path in args.checkpoints:
        if args.command == "chain":
            measured = [direction_chain(path, args.interp, args.prompts, args.guidance)]
        elif args.command == "binding":
            measured = [binding_accuracy(path, args.clips)]
        elif args.command == "moves":
            measured = [move_accuracy(path, args.clips, args.guidance)]
        else:
            measured = (judged(path, args.prompts, args.guidance, args.interp, search=search,
                               held_out=args.held_out) for search in (False, True))
        for row in measured:  # printed as each is measured
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_rows("move_search.py", argv, rows, args.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())

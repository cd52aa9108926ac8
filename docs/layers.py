"""CogVideo-mini in layers: one clip per digit, composed in pixels (round six), measured.

Round five (`docs/move_search.py chain`) found the key frames' representation to be the first
limit on directions: given every digit's *true* move, one-cell shifts of code blobs read 22% of
the prompts' first directions, against 53% for the real key frames, because two digits that
touch or cross share codes. Moving MNIST draws each digit on its own and keeps the brighter
pixel; `minivideo.models.cogvideo.layers` generates the same way. Both stages are trained on
clips of one digit (`CogVideoConfig.digits = 1`; the slow compass clips of rounds three to five,
one cell per key frame), each clause of a prompt is drawn as a clip of its own, and the clip is
the pixel-wise maximum of its layers.

The stages (one core each, side by side):

    python docs/temporal_levers.py train layer-copyt --minutes 50 --keep-every 1000 \\
        --out runs/s31/layer-copyt.pt
    python docs/temporal_levers.py train layer --stage interp --minutes 50 \\
        --out runs/s31/layer-interp.pt

``ceiling``: what the layered representation allows, on the real test clips whose captions are
the prompts: each digit rendered alone on the same path, encoded, its key frames held or filled
in by the layer interpolation stage, the layers composed; beside the real clips and their codes:

    python docs/layers.py ceiling runs/s31/layer-interp.pt --prompts 32 \\
        --out docs/figures/layers_ceiling.json

``instrument``: what the judge reads of real clips of each motion (the paper's, compass at 4 and
2 px per frame): the ceiling of every caption figure on those clips, on more clips than prompts:

    python docs/layers.py instrument --clips 256 --out docs/figures/layers_instrument.json

``judge``: whole clips from prompts of test clips (or held-out prompts), key frames drawn or by
move search over the one blob of each layer, at several guidance weights:

    python docs/layers.py judge runs/s31/layer-copyt.pt --interp runs/s31/layer-interp.pt \\
        --prompts 32 --guidance 3 --move-temperature 1 0.3 0.1 \\
        --out docs/figures/layers_move_temperature.json
    python docs/layers.py judge runs/s31/layer-copyt.pt --interp runs/s31/layer-interp.pt \\
        --prompts 32 --guidance 1 2 3 --out docs/figures/layers_judge.json
    python docs/layers.py judge runs/s31/layer-copyt.pt --interp runs/s31/layer-interp.pt \\
        --prompts 32 --guidance 1 2 3 --held-out --out docs/figures/layers_judge_held_out.json

The learning curve: the same held-out judge on the stage's snapshots (`--keep-every 1000`),
guidance 2, `--out docs/figures/layers_curve_step1000.json` (and 2000).

The move temperature (how sharply move search picks each move) is chosen on test prompts only
(`LAYER_MOVE_TEMPERATURE`); the held-out prompts are measured once, with that choice.

``start``: where a layer's first key frame puts its digit. A clause with one direction and no
bounce ("digit 3 moves up") names a digit that must start on the far side of the canvas (it
travels 32 px); the share of first key frames whose ink lies in the half the direction points
*to*, drawn by the stage, against real clips of one digit whose caption has one direction:

    python docs/layers.py start runs/s31/layer-copyt.pt --prompts 64 \\
        --out docs/figures/layers_start.json

The same key-frame stage with a learned correction to each caption word (`layer-copyt-words`,
`python docs/temporal_levers.py train layer-copyt-words --minutes 38 --threads 1 --out
runs/s31/layer-words.pt`), measured the same way at guidance 2 (`judge ... --guidance 2
[--held-out] --out docs/figures/layers_words_judge[_held_out].json`, `start ... --out
docs/figures/layers_words_start.json`).

``figure``: layered clips of held-out prompts, every second frame, one row per prompt:

    python docs/layers.py figure runs/s31/layer-copyt.pt --interp runs/s31/layer-interp.pt \\
        --prompts 4 --out docs/figures/layers_held_out.png

Round seven (the figures above were measured with the generator's first labels, version 1):
on the compass lattice a digit that lands exactly on a wall used to keep, for that frame, a
velocity pointing into it, so a caption starting there named a move the clip never shows
(`LABELS_VERSION = 2` in `minivideo.data.moving_mnist` turns it at the wall; pixels unchanged).
The stages retrained by their registered targets on the corrected captions, one core each:

    python -m minivideo train cogvideo-layer-keyframes --config small --steps 7000 \
        --threads 1 --bf16 --save-every 250 --keep-every 1000 --no-eval --out runs/s32/keys.pt
    python -m minivideo train cogvideo-layer-interp --config small --steps 100000 \
        --minutes 55 --threads 1 --bf16 --save-every 250 --keep-every 1000 --no-eval \
        --out runs/s32/interp.pt

and measured with the commands above, `runs/s32/keys.pt --interp runs/s32/interp.pt`, into
`docs/figures/walls_*.json` (instrument, ceiling, judge, judge_held_out, curve_step*, start).

Round eight (runs/s32/round6-*.pt are copies of the shipped stages). ``moves``: the first /
later / all four searched moves of the held-out clauses that are the clause's direction, and
first key frames against the wall the digit is told to move to, over `--seeds` samples:

    python docs/layers.py moves runs/s32/round6-keys.pt --prompts 45 --seeds 2 \
        --out docs/figures/rerank_moves_one_chain.json
    python docs/layers.py moves runs/s32/round6-keys.pt --prompts 45 --seeds 2 --rerank 4 \
        --out docs/figures/rerank_moves.json

The best of K key-frame chains (`search_keyframes(..., rerank=K)`, `chain_scores`), judged on
the held-out prompts (`--seed S`: another sample of every prompt; `--searched-only`: no drawn
key frames) and on the test prompts, which chose the default `LAYER_RERANK = 4`:

    python docs/layers.py judge runs/s32/round6-keys.pt --interp runs/s32/round6-interp.pt \
        --prompts 45 --guidance 2 --held-out --searched-only --rerank 4 --seed 0 \
        --out docs/figures/rerank_held_out_seed0.json        # and --seed 1, 2, 3
    python docs/layers.py judge ... --held-out --searched-only --seed 1 \
        --out docs/figures/rerank_held_out_one_chain_seed1.json
    python docs/layers.py judge ... --prompts 45 --guidance 1 3 --held-out --searched-only \
        --rerank 4 --out docs/figures/rerank_held_out_guidance13.json
    python docs/layers.py judge ... --prompts 32 --guidance 2 --searched-only [--rerank 4] \
        --out docs/figures/rerank_test[_one_chain].json
    python docs/layers.py figure runs/s32/round6-keys.pt --interp runs/s32/round6-interp.pt \
        --prompts 4 --rerank 4 --out docs/figures/rerank_held_out.png

Middle frames by search (`minivideo.models.cogvideo.middles`: the layer's digit shifted in
pixels to where it can be halfway, each proposal scored by the interpolation stage; `ceiling`
gains the row `layer_keyframes_middles_searched`, `judge --middle-search`):

    python docs/layers.py ceiling runs/s32/interp.pt --prompts 32 --guidance 2 \
        --out docs/figures/middles_ceiling.json
    python docs/layers.py judge runs/s32/round6-keys.pt --interp runs/s32/round6-interp.pt \
        --prompts 45 --guidance 2 --held-out --searched-only --middle-search \
        --out docs/figures/middles_round_six_held_out.json
    python docs/layers.py judge ... --prompts 32 --guidance 2 --searched-only --rerank 4 \
        --middle-search --out docs/figures/middles_test.json
    python docs/layers.py judge runs/s32/keys.pt --interp runs/s32/interp.pt --prompts 45 \
        --guidance 2 --held-out --searched-only --middle-search --seed 0 \
        --out docs/figures/middles_round_seven_held_out_seed0.json      # and --seed 1

A key-frame stage that also learns directions without the digit word
(`cogvideo-layer-keyframes-motion`, `CogVideoConfig.digit_dropout`), its chains and clips:

    python -m minivideo train cogvideo-layer-keyframes-motion --config small --steps 4800 \
        --threads 1 --bf16 --save-every 250 --keep-every 1000 --no-eval --out runs/s33/motion.pt
    python docs/layers.py moves runs/s33/motion.pt --prompts 45 --seeds 2 [--rerank 4] \
        --out docs/figures/digit_dropout_moves[_one_chain].json
    python docs/layers.py judge runs/s33/motion.pt --interp runs/s32/round6-interp.pt \
        --prompts 45 --guidance 2 --held-out --searched-only --rerank 4 --seed 0 \
        --out docs/figures/digit_dropout_held_out_seed0.json           # and --seed 1
The learning curve, from the snapshots' held-out judge runs (`--prompts 45 --guidance 2`) and the
CPU minutes each snapshot had trained (step × 5,808 s / 7,000 steps):

    python docs/layers.py curve docs/figures/walls_curve_step1000.json:13.8 \
        docs/figures/walls_curve_step2000.json:27.7 docs/figures/walls_curve_step3000.json:41.5 \
        docs/figures/walls_curve_step4000.json:55.3 docs/figures/walls_curve_step5000.json:69.1 \
        docs/figures/walls_judge_held_out.json:96.8 --out docs/figures/walls_curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from temporal_levers import load, write_rows  # noqa: E402

from minivideo.checkpoints import load_checkpoint  # noqa: E402
from minivideo.data.mnist import load_digits  # noqa: E402
from minivideo.data.moving_mnist import COMPASS, KING_MOVES, generate_clips, render  # noqa: E402
from minivideo.metrics.captions import caption_accuracy  # noqa: E402
from minivideo.metrics.cogvideo_quality import (  # noqa: E402
    TEST_SEED,
    _clip_caption,
    evaluate_text_to_video,
    prompt_clips,
    test_clips,
)
from minivideo.models.cogvideo import (  # noqa: E402
    KEYFRAME_STRIDE,
    LAYER_GUIDANCE,
    LAYER_MOVE_TEMPERATURE,
    clip_config,
    encode_prompt,
    held_out_prompts,
    interpolate,
    layered_text_to_video,
    motion_caption,
    prompt_layers,
    sample_keyframes,
    tokenizer_of,
)
from minivideo.models.cogvideo.middles import search_middles  # noqa: E402
from minivideo.models.cogvideo.search import search_keyframes  # noqa: E402
from minivideo.pretrained import pretrained  # noqa: E402
from minivideo.utils import to_uint8  # noqa: E402
from minivideo.viz import save_frame_strip  # noqa: E402


def _rounded(figures: dict) -> dict:
    return {k: round(v, 4) for k, v in figures.items()}


def real_layers(stage, num_prompts: int):
    """The prompts' real test clips (`prompt_clips`, regenerated from the same seed) and each
    digit rendered alone on its own path: uint8 (n, 2, T, H, W), with the clips' captions."""
    clips = prompt_clips(stage, num_prompts)
    config = replace(stage.config.clips, num_digits=2)
    rng = np.random.default_rng([TEST_SEED, 1, 9])  # encode_clips' stream of test clips
    images, _ = load_digits("test")
    batch = generate_clips(num_prompts, load_digits("test"), config, rng)  # one batch (≤ 64)
    if not np.array_equal(batch.digits, clips.digits):
        raise RuntimeError("the regenerated clips are not the prompts' clips")
    positions = batch.trajectories.positions_int
    layers = np.stack([render(images[batch.digit_ids[:, k : k + 1]], positions[:, :, k : k + 1])
                       for k in range(2)], 1)
    return batch.videos, layers, [_clip_caption(clips, i) for i in range(num_prompts)]


def ceiling(interp_path: Path, num_prompts: int, guidance: float) -> dict:
    """The judge on real clips, on their layers composed, and on the layers' real key frames
    held for four frames or filled in by the layer interpolation stage, then composed."""
    middles = load(load_checkpoint(interp_path))
    judge, tokenizer = pretrained("judge"), tokenizer_of(middles)
    video, layers, captions = real_layers(middles, num_prompts)
    n, k, t = layers.shape[:3]
    flat = torch.from_numpy(layers.reshape(n * k, t, *layers.shape[3:]))
    with torch.no_grad():
        codes = tokenizer.encode(flat)
    keys = codes[:, ::KEYFRAME_STRIDE].long()
    clauses = [clause for caption in captions for clause in caption.split(" and ")]
    ids = torch.stack([encode_prompt(c) for c in clauses])

    def read(layer_codes: torch.Tensor) -> dict:
        with torch.no_grad():
            pixels = tokenizer.decode(layer_codes).reshape(n, k, t, *layers.shape[3:])
        composed = torch.from_numpy(to_uint8(pixels.amax(1)))
        return _rounded(caption_accuracy(judge, composed, captions))

    held = keys.repeat_interleave(KEYFRAME_STRIDE, 1)[:, :t]
    return {"interp": str(interp_path), "prompts": num_prompts, "guidance": guidance,
            "real_clips": _rounded(caption_accuracy(judge, torch.from_numpy(video), captions)),
            "real_layers_composed": _rounded(caption_accuracy(
                judge, torch.from_numpy(layers.max(1)), captions)),
            "layer_codes_composed": read(codes.long()),
            "layer_keyframes_held": read(held),
            "layer_keyframes_interpolated": read(interpolate(middles, ids, keys,
                                                             guidance=guidance, seed=0)),
            "layer_keyframes_middles_searched": read(search_middles(middles, ids, keys,
                                                                    guidance=guidance, seed=0))}


def instrument(num_clips: int) -> list[dict]:
    """The judge's caption accuracy on real clips of test digits, for each clip motion."""
    judge, rows = pretrained("judge"), []
    for motion, step in (("any", None), ("compass", 4), ("compass", 2)):
        config = clip_config(motion) if step is None else clip_config(motion, step_px=step)
        batch = generate_clips(num_clips, load_digits("test"), config, np.random.default_rng(5))
        captions = [motion_caption(batch.digits[i], batch.trajectories.directions[i][:-1])
                    for i in range(num_clips)]
        rows.append({"clip_motion": motion, "compass_step_px": step, "clips": num_clips,
                     **_rounded(caption_accuracy(judge, torch.from_numpy(batch.videos),
                                                 captions))})
        print(rows[-1], flush=True)
    return rows


def judged(path: Path, interp: Path, num_prompts: int, guidance: float, held_out: bool,
           move_temperatures: list[float], seed: int = 0, drawn: bool = True,
           middle_search: bool = False, rerank: int = 1) -> dict:
    """Whole layered clips read by the judge: key frames drawn (if `drawn`), and by move search
    at each move temperature; `seed` draws another sample of every prompt; `middle_search`:
    middle frames by search too (`minivideo.models.cogvideo.middles`)."""
    keys, middles = load(load_checkpoint(path)), load(load_checkpoint(interp))
    row = {"checkpoint": str(path), "interp": str(interp), "guidance": guidance,
           **({"seed": seed} if seed else {}),
           **({"middle_search": True} if middle_search else {}),
           **({"rerank": rerank} if rerank > 1 else {})}
    for name, search, move in [("drawn", False, 1.0)] * drawn + [
            (f"searched_move_temperature_{t:g}", True, t) for t in move_temperatures]:
        figures = evaluate_text_to_video(keys, middles, pretrained("judge"), num_prompts,
                                         guidance=guidance, held_out=held_out, search=search,
                                         move_temperature=move, seed=seed,
                                         middle_search=middle_search,
                                         rerank=rerank if search else 1)  # chains are searched
        row[name] = figures
        print(f"guidance {guidance:g}, {name}: {figures}", flush=True)
    return row


AXIS_WORDS = {"up": (0, -1), "down": (0, 1), "left": (1, -1), "right": (1, 1)}


def _toward(frames: torch.Tensor, words: list[str]) -> float:
    """Share of frames (n, H, W) whose ink centre lies in the half its word points to."""
    hits = []
    for frame, word in zip(frames.float(), words, strict=True):
        axis, sign = AXIS_WORDS[word]
        profile = frame.sum(1 - axis)  # ink along rows (axis 0) or columns (axis 1)
        centre = float((profile * torch.arange(len(profile))).sum() / profile.sum().clamp(min=1))
        hits.append((centre - (len(profile) - 1) / 2) * sign > 0)
    return float(np.mean(hits))


def start(path: Path, num_prompts: int, guidance: float) -> dict:
    """Where first key frames put a digit told to move along one axis: drawn vs real."""
    keys = load(load_checkpoint(path))
    tokenizer = tokenizer_of(keys)
    real = test_clips(keys, 512)  # clips of one digit, as the stage trained on
    rows = [i for i in range(len(real)) if len(set(real.directions[i, :-1, 0].tolist())) == 1
            and motion_caption(real.digits[i], real.directions[i, :-1]).split()[-1]
            in AXIS_WORDS][:num_prompts]
    captions = [motion_caption(real.digits[i], real.directions[i, :-1]) for i in rows]
    words = [c.split()[-1] for c in captions]
    ids = torch.stack([encode_prompt(c) for c in captions])
    with torch.no_grad():
        drawn = tokenizer.decode(sample_keyframes(keys, ids, guidance=guidance, seed=0)[:, :1])
        truth = tokenizer.decode(real.codes[rows, :1].long())
    return {"checkpoint": str(path), "clauses": len(rows), "guidance": guidance,
            "drawn_first_keyframe_toward_direction": round(_toward(drawn[:, 0], words), 4),
            "real_first_frame_toward_direction": round(_toward(truth[:, 0], words), 4)}


def moves(path: Path, num_prompts: int, guidance: float, seeds: int, rerank: int = 1) -> dict:
    """How often move search's first move of a held-out clause is its direction (the king's
    move of the word), over `seeds` samples, and how often the first key frame puts the digit
    against the wall it is told to move towards (that move cannot be proposed)."""
    keys = load(load_checkpoint(path))
    clauses, _ = prompt_layers(held_out_prompts(num_prompts))
    ids = torch.stack([encode_prompt(c) for c in clauses])
    truth = [tuple(int(v) for v in KING_MOVES[COMPASS.index(c.split()[-1])]) for c in clauses]
    firsts, later, whole, blocked = [], [], [], []
    for seed in range(seeds):
        frames, chosen = search_keyframes(keys, ids, guidance=guidance, seed=seed, max_blobs=1,
                                          rerank=rerank)
        whole += [all(bool(m) and tuple(m[0]) == t for m in c)
                  for c, t in zip(chosen, truth, strict=True)]
        # a move is a tuple per blob; a first key frame without ink has none
        firsts += [bool(c[0]) and tuple(c[0][0]) == t for c, t in zip(chosen, truth, strict=True)]
        later += [bool(m) and tuple(m[0]) == t
                  for c, t in zip(chosen, truth, strict=True) for m in c[1:]]
        for grid, (dy, dx) in zip(frames[:, 0].cpu().numpy(), truth, strict=True):
            rows, cols = np.nonzero(grid != 0)  # the digit's cells (0: the empty code)
            last = len(grid) - 1
            blocked.append(len(rows) == 0 or (dy < 0 and rows.min() == 0)
                           or (dy > 0 and rows.max() == last) or (dx < 0 and cols.min() == 0)
                           or (dx > 0 and cols.max() == last))
    return {"checkpoint": str(path), "clauses": len(clauses), "seeds": seeds,
            "guidance": guidance, "first_move_is_direction": round(float(np.mean(firsts)), 4),
            "later_moves_are_direction": round(float(np.mean(later)), 4),
            "all_four_moves_are_direction": round(float(np.mean(whole)), 4),
            **({"rerank": rerank} if rerank > 1 else {}),
            "first_keyframe_at_the_wall_it_moves_to": round(float(np.mean(blocked)), 4)}


def figure(path: Path, interp: Path, num_prompts: int, guidance: float, out: Path,
           rerank: int = 1) -> dict:
    """Layered clips of held-out prompts (every second frame), drawn and searched; with
    `rerank` K > 1, searched from one key-frame chain and the best of K instead."""
    keys, middles = load(load_checkpoint(path)), load(load_checkpoint(interp))
    prompts = held_out_prompts(num_prompts)
    ways = ([("drawn", False, 1), ("searched", True, 1)] if rerank == 1 else
            [("searched, one chain", True, 1), (f"searched, best of {rerank}", True, rerank)])
    rows, titles = [], []
    for name, search, chains in ways:
        clips = layered_text_to_video(keys, middles, prompts, guidance=guidance, seed=0,
                                      search=search, rerank=chains)
        rows.append(to_uint8(clips[:, ::2]))
        titles += [f"{name}: {p}" for p in prompts]
    frames = np.concatenate(rows)
    save_frame_strip(frames, out, titles=titles)
    return {"prompts": prompts, "guidance": guidance, "png": str(out),
            **({"rerank": rerank} if rerank > 1 else {})}


def _reads(row: dict, how: str) -> dict:
    return {k.split("caption_")[-1]: v for k, v in row[how].items() if "caption_" in k}


def curve(points: list[str], guidance: float, out: Path) -> dict:
    """Caption accuracy of the held-out judge's runs on a stage's snapshots against CPU minutes:
    `points` are JSON:MINUTES pairs (files written by ``judge --held-out``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for point in points:
        name, _, minutes = point.rpartition(":")
        judged_rows = json.loads(Path(name).read_text())["rows"]
        row = next(r for r in judged_rows if r["guidance"] == guidance)
        rows.append({"json": name, "cpu_minutes": float(minutes),
                     **{how: _reads(row, key) for how, key in (
                         ("searched", f"searched_move_temperature_{LAYER_MOVE_TEMPERATURE:g}"),
                         ("drawn", "drawn")) if key in row}})
    rows.sort(key=lambda r: r["cpu_minutes"])
    minutes = [r["cpu_minutes"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for how, style in (("searched", "-"), ("drawn", ":")) if all("drawn" in r for r in rows) \
            else (("searched", "-"),):  # judge --searched-only runs have no drawn figures
        for key, label, marker in (("digits", "digits", "o"), ("motion", "first directions", "s")):
            ax.plot(minutes, [r[how][key] for r in rows], marker + style,
                    color="C0" if key == "digits" else "C1", label=f"{label}, key frames {how}")
    ax.axhline(0.85, color="C0", lw=0.8, alpha=0.5, label="goals: digits 85%, directions 75%")
    ax.axhline(0.75, color="C1", lw=0.8, alpha=0.5)
    ax.set(xlabel="CPU minutes of the key-frame stage (1 thread)", ylim=(0, 1.02),
           ylabel="judge reads the prompt's …",
           title=f"held-out prompts, layered clips, guidance {guidance:g}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return {"guidance": guidance, "png": str(out), "points": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    real = commands.add_parser("instrument", help="the judge on real clips of each motion")
    real.add_argument("--clips", type=int, default=256)
    real.add_argument("--out", type=Path, required=True)
    top = commands.add_parser("ceiling", help="the layered representation's ceiling")
    top.add_argument("interp", type=Path)
    top.add_argument("--guidance", type=float, default=3.0)
    for command in (commands.add_parser("judge", help="whole layered clips, judged"),
                    commands.add_parser("figure", help="layered clips of held-out prompts")):
        command.add_argument("checkpoint", type=Path)
        command.add_argument("--interp", type=Path, required=True)
    commands.choices["judge"].add_argument("--guidance", type=float, nargs="+", default=[3.0])
    commands.choices["judge"].add_argument("--held-out", action="store_true")
    commands.choices["judge"].add_argument("--seed", type=int, default=0,
                                           help="sampling seed (another draw of each prompt)")
    commands.choices["judge"].add_argument("--searched-only", action="store_true",
                                           help="skip the key frames drawn code by code")
    commands.choices["judge"].add_argument("--middle-search", action="store_true",
                                           help="middle frames by search (middles.py)")
    commands.choices["judge"].add_argument("--rerank", type=int, default=1,
                                           help="key-frame chains per layer, the best kept")
    commands.choices["judge"].add_argument("--move-temperature", type=float, nargs="+",
                                           default=[LAYER_MOVE_TEMPERATURE])
    commands.choices["figure"].add_argument("--guidance", type=float, default=LAYER_GUIDANCE)
    commands.choices["figure"].add_argument("--rerank", type=int, default=1)
    plot = commands.add_parser("curve", help="the learning curve of held-out judge runs")
    plot.add_argument("points", nargs="+", help="JSON:MINUTES, files of judge --held-out")
    plot.add_argument("--guidance", type=float, default=LAYER_GUIDANCE)
    chosen = commands.add_parser("moves", help="move search's first moves of held-out clauses")
    chosen.add_argument("checkpoint", type=Path)
    chosen.add_argument("--guidance", type=float, default=LAYER_GUIDANCE)
    chosen.add_argument("--seeds", type=int, default=2)
    chosen.add_argument("--rerank", type=int, default=1)
    where = commands.add_parser("start", help="where first key frames put the digit")
    where.add_argument("checkpoint", type=Path)
    where.add_argument("--guidance", type=float, default=LAYER_GUIDANCE)
    for name, command in commands.choices.items():
        command.add_argument("--threads", type=int, default=1)
        if name not in ("instrument", "curve"):
            command.add_argument("--prompts", type=int, default=32)
        if name != "instrument":
            command.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command not in ("instrument", "curve") and not 1 <= args.prompts <= 64:
        parser.error(f"--prompts must be in [1, 64], got {args.prompts}")
    if args.command == "instrument" and args.clips < 1:
        parser.error(f"--clips must be positive, got {args.clips}")
    torch.set_num_threads(args.threads)
    if args.command == "instrument":
        rows = instrument(args.clips)
    elif args.command == "ceiling":
        rows = [ceiling(args.interp, args.prompts, args.guidance)]
    elif args.command == "curve":
        rows = [curve(args.points, args.guidance, args.out)]
        args.out = args.out.with_suffix(".json")
    elif args.command == "moves":
        rows = [moves(args.checkpoint, args.prompts, args.guidance, args.seeds, args.rerank)]
    elif args.command == "start":
        rows = [start(args.checkpoint, args.prompts, args.guidance)]
    elif args.command == "judge":
        rows = [judged(args.checkpoint, args.interp, args.prompts, g, args.held_out,
                       args.move_temperature, args.seed, not args.searched_only,
                       args.middle_search, args.rerank)
                for g in args.guidance]
    else:
        rows = [figure(args.checkpoint, args.interp, args.prompts, args.guidance, args.out,
                       args.rerank)]
        args.out = args.out.with_suffix(".json")
    write_rows("layers.py", argv, rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

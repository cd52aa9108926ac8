"""How good a VideoGPT prior is, on clips of held-out TEST digits, by conditioning.

* every prior: bits per code of the test clips' codes (its held-out likelihood);
* ``frames`` (video prediction, k → 16 − k frames): per-frame MSE (pixel sum), SSIM, PSNR of
  the predicted future against the true one, and the judge's digit identity on the predicted
  future (the digits must survive). Two baselines put the numbers in context: the clip
  tokenizer's own reconstruction of the true clip (what a perfect prior could reach through
  this tokenizer) and "copy the last context frame" (what a model that knows nothing of motion
  reaches);
* ``class``: the fraction of samples in which the judge reads exactly the requested digits,
  beside the judge's accuracy on real test clips;
* ``none``: the Fréchet distance between judge features of samples and of real test clips,
  beside two reference points with the same numbers of clips: another set of real test clips
  (the floor from sampling noise) and the tokenizer's reconstructions of that other set (the
  floor of any prior through this tokenizer). With few clips the distance is biased upwards;
  only numbers computed with the same counts are comparable.

The judge is `pretrained("judge")`; if it is not there yet, the judge's figures are left out.

    python -m minivideo eval videogpt checkpoints/videogpt.pt --num 64
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from minivideo.metrics.frechet import frechet_distance
from minivideo.metrics.judge import judge_features, reads_digit_sets
from minivideo.metrics.prediction import prediction_error
from minivideo.metrics.reconstruction import evaluate_tokenizer, reconstruct, test_clips
from minivideo.models.videogpt import VideoGPT, check_tokenizer, predict_clips, sample_clips
from minivideo.pretrained import pretrained

NUM_FRAMES = 16


def judge_reads(judge: nn.Module, videos: torch.Tensor, digits: torch.Tensor) -> float:
    """Fraction of clips whose set of digits, as the judge reads it, equals the given set."""
    return float(reads_digit_sets(judge, videos, digits).float().mean())


@torch.no_grad()
def tokenizer_figures(tokenizer: nn.Module, classifier: nn.Module, judge: nn.Module,
                      clips: dict | None = None) -> dict[str, float]:
    """A tokenizer's reconstruction figures on 256 held-out clips (`evaluate_tokenizer`), and the
    judge's reads of its reconstructions of `clips` beside the real ones: the ceiling of any
    prior over its codes."""
    tokenizer.eval()
    row = evaluate_tokenizer(tokenizer, num_clips=256, classifier=classifier)
    if clips is not None:
        recon = reconstruct(tokenizer, clips["video"], batch_size=16)
        row["judge_reads_tokenizer"] = judge_reads(judge, recon, clips["digits"])
        row["judge_reads_real"] = judge_reads(judge, clips["video"], clips["digits"])
    return row


@torch.no_grad()
def bits_per_code(model: VideoGPT, codes: torch.Tensor, digits: torch.Tensor,
                  frames: torch.Tensor, batch_size: int = 16) -> float:
    """Mean bits per code of clips' codes under the prior, given each clip's own condition."""
    model.eval()
    total = 0.0
    for start in range(0, len(codes), batch_size):
        part = slice(start, start + batch_size)
        cond = model.config.cond
        _, loss = model(codes[part],
                        digits=digits[part] if cond == "class" else None,
                        frames=frames[part] if cond == "frames" else None)
        total += float(loss) * len(codes[part])
    return total / len(codes) / math.log(2)


def _load(name: str) -> nn.Module | None:
    try:
        return pretrained(name).cpu()
    except (ValueError, FileNotFoundError):
        return None


@torch.no_grad()
def evaluate_videogpt(model: nn.Module, num_clips: int = 64, tokenizer: nn.Module | None = None,
                      judge: nn.Module | None = None, seed: int = 0,
                      batch_size: int = 32) -> dict[str, float]:
    """Held-out figures of a VideoGPT prior (see the module docstring), sampled on the CPU."""
    if not isinstance(model, VideoGPT):
        raise TypeError(f"model must be a VideoGPT, got {type(model).__name__}")
    if not isinstance(num_clips, int) or num_clips < 2:
        raise ValueError(f"num_clips must be an int >= 2 (Fréchet needs 2), got {num_clips!r}")
    name = model.config.tokenizer
    tokenizer = tokenizer if tokenizer is not None else _load(name)
    if tokenizer is None:
        raise FileNotFoundError(f"evaluate_videogpt needs the prior's tokenizer: "
                                f"checkpoints/{name}.pt")
    judge = judge if judge is not None else _load("judge")
    model, tokenizer = model.cpu().eval(), tokenizer.cpu().eval()
    check_tokenizer(model, tokenizer)
    config = model.config
    clips = test_clips(num_clips, NUM_FRAMES)
    video, digits = clips["video"], clips["digits"]
    codes = torch.cat([tokenizer.encode(video[s : s + batch_size])
                       for s in range(0, num_clips, batch_size)])
    k = config.context_frames
    frames = video[:, :k]
    results: dict[str, float] = {
        "test_clips": float(num_clips),
        "test_bits_per_code": bits_per_code(model, codes, digits, frames),
    }
    condition = {"frames": {"frames": frames}, "class": {"digits": digits}}.get(config.cond, {})
    began = time.perf_counter()
    samples = sample_clips(model, tokenizer, num_clips, seed=seed, batch_size=batch_size,
                           **condition)
    results["samples_per_second_cpu"] = num_clips / (time.perf_counter() - began)
    if config.null_class:  # one prior, three conditionings: measure each
        results.update(_one_prior_figures(model, tokenizer, judge, clips, codes, samples, seed,
                                          batch_size))
        results["judge_available"] = float(judge is not None)
        return {name: round(float(value), 4) for name, value in results.items()}
    if config.cond == "frames":
        results.update(_prediction_figures(samples, video, _decoded(tokenizer, codes, batch_size),
                                           k))
        if judge is not None:
            results["judge_digits_predicted"] = judge_reads(judge, samples[:, k:], digits)
            results["judge_digits_true_future"] = judge_reads(judge, video[:, k:], digits)
    elif config.cond == "class" and judge is not None:
        results["judge_reads_requested"] = judge_reads(judge, samples, digits)
        results["judge_reads_real"] = judge_reads(judge, video, digits)
    elif config.cond == "none" and judge is not None:
        real = judge_features(judge, video)
        # The references use OTHER real clips, as the samples do: reconstructions of the very
        # clips the real features come from would sit unfairly close to them.
        other = test_clips(num_clips, NUM_FRAMES, seed=4321)["video"]  # disjoint real clips
        recon = torch.cat([tokenizer.decode(tokenizer.encode(other[s : s + batch_size]))
                           for s in range(0, num_clips, batch_size)])
        results["frechet_samples"] = frechet_distance(judge_features(judge, samples), real)
        results["frechet_real_vs_real"] = frechet_distance(judge_features(judge, other), real)
        results["frechet_tokenizer"] = frechet_distance(judge_features(judge, recon), real)
    results["judge_available"] = float(judge is not None)
    return {name: round(float(value), 4) for name, value in results.items()}


def _decoded(tokenizer: nn.Module, codes: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The tokenizer's decoding of code grids (n t h w), in batches: float [0, 1] (n T H W)."""
    return torch.cat([tokenizer.decode(codes[s : s + batch_size])
                      for s in range(0, len(codes), batch_size)])


def _prediction_figures(prediction: torch.Tensor, video: torch.Tensor, recon: torch.Tensor,
                        k: int) -> dict[str, float]:
    """Per-frame MSE/SSIM/PSNR of predicted futures (frames k.. of `prediction`), beside the
    tokenizer's reconstruction `recon` of the true clips (the floor any prior reaches through
    this tokenizer) and copying the last context frame (a model that knows no motion)."""
    future = video[:, k:]
    scored = {"": prediction[:, k:], "tokenizer_": recon[:, k:],
              "copy_last_": video[:, k - 1 : k].expand_as(future)}
    results: dict[str, float] = {}
    for prefix, predicted in scored.items():
        error = prediction_error(predicted, future)
        results.update({f"{prefix}{name}": value for name, value in error.mean.items()})
    results["context_frames"] = float(k)
    results["future_frames"] = float(video.shape[1] - k)
    return results


def _one_prior_figures(model: VideoGPT, tokenizer: nn.Module, judge: nn.Module | None,
                       clips: dict, codes: torch.Tensor, class_samples: torch.Tensor, seed: int,
                       batch_size: int) -> dict[str, float]:
    """A prior with a NULL label: class reads, unconditional Fréchet, and prediction from the
    context's own codes (forced), all on the same test clips."""
    video, digits = clips["video"], clips["digits"]
    n, k = len(video), PREDICTION_CONTEXT
    results: dict[str, float] = {}
    # Prediction: the first k frames are encoded on their own (nothing of the future leaks).
    predicted = predict_clips(model, tokenizer, video[:, :k], seed=seed + 1,
                              batch_size=batch_size)
    recon = _decoded(tokenizer, codes, batch_size)
    results.update(_prediction_figures(predicted, video, recon, k))
    unconditional = sample_clips(model, tokenizer, n, seed=seed + 2, batch_size=batch_size)
    if judge is not None:
        guided = sample_clips(model, tokenizer, n, digits=digits, guidance=GUIDANCE,
                              seed=seed + 3, batch_size=batch_size)
        results["judge_reads_requested_guided"] = judge_reads(judge, guided, digits)
        results["guidance"] = GUIDANCE
        results["judge_reads_requested"] = judge_reads(judge, class_samples, digits)
        results["judge_reads_real"] = judge_reads(judge, video, digits)
        results["judge_digits_predicted"] = judge_reads(judge, predicted[:, k:], digits)
        results["judge_digits_true_future"] = judge_reads(judge, video[:, k:], digits)
        # the ceiling of any prior through this tokenizer: the judge on the real clips' codes
        results["judge_reads_tokenizer"] = judge_reads(judge, recon, digits)
        real = judge_features(judge, video)
        other = test_clips(n, NUM_FRAMES, seed=4321)["video"]  # disjoint real clips
        first = other[:, :1].expand_as(other)  # the "first frame repeated" reference
        results["frechet_samples"] = frechet_distance(judge_features(judge, unconditional), real)
        results["frechet_real_vs_real"] = frechet_distance(judge_features(judge, other), real)
        results["frechet_first_frame_repeated"] = frechet_distance(
            judge_features(judge, first), real)
    return results


GUIDANCE = 2.0  # the classifier-free guidance weight also measured for class samples
PREDICTION_CONTEXT = 8  # frames given to a one-prior model (2 latent steps of 4 frames)

PUBLISHED_MSE = "ConvLSTM ≈ 103, PredRNN ≈ 57, SimVP ≈ 24 (10 → 10, deterministic, GPU-trained)"


def quality_table(figures: dict[str, dict[str, float]]) -> str:
    """A markdown table of `evaluate_videogpt` figures, one block of rows per conditioning."""
    def get(row: dict, name: str, fmt: str = ".3g") -> str:
        return format(row[name], fmt) if name in row else "–"

    def pct(row: dict, name: str) -> str:
        return f"{100 * row[name]:.0f}%" if name in row else "– (no judge)"

    lines = ["| prior | test bits/code | figure | value | for comparison |",
             "|---|---|---|---|---|"]
    for cond, row in figures.items():
        bits = get(row, "test_bits_per_code")
        if cond == "frames":
            k, n = int(row.get("context_frames", 8)), int(row.get("future_frames", 8))
            lines.append(
                f"| frames ({k} → {n}) | {bits} | per-frame MSE / SSIM / PSNR | "
                f"{get(row, 'mse', '.1f')} / {get(row, 'ssim', '.3f')} / "
                f"{get(row, 'psnr', '.1f')} dB | tokenizer {get(row, 'tokenizer_mse', '.1f')} / "
                f"{get(row, 'tokenizer_ssim', '.3f')} / {get(row, 'tokenizer_psnr', '.1f')}; "
                f"copy last frame {get(row, 'copy_last_mse', '.1f')} / "
                f"{get(row, 'copy_last_ssim', '.3f')} / {get(row, 'copy_last_psnr', '.1f')}; "
                f"published MSE: {PUBLISHED_MSE} |")
            lines.append(f"| | | judge reads both digits in the prediction | "
                         f"{pct(row, 'judge_digits_predicted')} | in the true future: "
                         f"{pct(row, 'judge_digits_true_future')} |")
        elif cond == "class":
            guided = (f" (guidance {row['guidance']:g}: {pct(row, 'judge_reads_requested_guided')})"
                      if "judge_reads_requested_guided" in row else "")
            through = (f"; through the tokenizer: {pct(row, 'judge_reads_tokenizer')}"
                       if "judge_reads_tokenizer" in row else "")
            lines.append(f"| class | {bits} | judge reads the requested digits | "
                         f"{pct(row, 'judge_reads_requested')}{guided} | in real clips: "
                         f"{pct(row, 'judge_reads_real')}{through} |")
        else:
            n = int(row.get("test_clips", 0))
            refs = [f"real vs real {get(row, 'frechet_real_vs_real')}"]
            if "frechet_tokenizer" in row:
                refs.append(f"tokenizer {get(row, 'frechet_tokenizer')}")
            if "frechet_first_frame_repeated" in row:
                refs.append(f"first frame repeated {get(row, 'frechet_first_frame_repeated')}")
            lines.append(f"| none | {bits} | Fréchet distance of judge features ({n} clips) | "
                         f"{get(row, 'frechet_samples')} | {'; '.join(refs)} |")
    return "\n".join(lines)

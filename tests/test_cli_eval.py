"""`python -m minivideo eval`: end to end on small files, JSON output, and clear errors."""

import json
import re

import numpy as np
import pytest
import torch

from minivideo.__main__ import main
from minivideo.checkpoints import save_checkpoint
from minivideo.data.datasets import generate_arrays, save_clips
from minivideo.data.moving_mnist import MovingMNISTConfig
from minivideo.metrics.judge import build_judge


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny (untrained) judge checkpoint, 8 real clips with captions, 8 'generated' ones."""
    folder = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    judge = folder / "judge.pt"
    save_checkpoint(judge, model=build_judge("tiny"))
    config = MovingMNISTConfig(num_frames=10)
    real = save_clips(folder / "real.npz", generate_arrays(8, "test", 0, config, progress=False))
    arrays = generate_arrays(8, "train", 1, config, progress=False)
    samples = save_clips(folder / "samples.npz", {"videos": arrays["videos"],
                                                 "captions": arrays["captions"]})
    return {"judge": str(judge), "real": str(real), "samples": str(samples), "folder": folder}


@pytest.fixture(autouse=True)
def restore_threads():
    # the command sets torch's thread count (--threads 1: tiny convolutions on a busy machine)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def evaluate(files, *options):
    return main(["eval", files["samples"], "--judge", files["judge"], "--no-progress",
                 "--threads", "1", *options])


def test_prints_a_table_of_every_figure_asked_for(files, capsys):
    assert evaluate(files, "--reference", files["real"], "--captions",
                    "--context-frames", "4") == 0
    table = capsys.readouterr().out
    for figure in ("clips", "digits seen per clip", "FJD samples vs reference",
                   "caption accuracy: digits", "caption accuracy: motion",
                   "prediction mse (frames 4+)", "prediction ssim", "prediction psnr"):
        assert figure in table, table


def test_json_output_holds_the_same_figures_with_reference_points(files, capsys):
    assert evaluate(files, "--reference", files["real"], "--reference-points", "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert results["clips"] == 8 and results["frames"] == 10
    assert results["FJD reference clips (B)"] == 4
    for key in ("FJD floor: real A vs B", "FJD static A vs B", "FJD shuffled A vs B",
                "FJD blur A vs B", "FJD noise A vs B", "FJD samples vs B"):
        assert results[key] >= 0, key


def test_the_same_clips_have_zero_prediction_error_and_best_of_k_works(files, capsys):
    real = files["real"]
    assert main(["eval", real, "--judge", files["judge"], "--reference", real,
                 "--context-frames", "5", "--json", "--no-progress", "--threads", "1"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["FJD samples vs reference"] == pytest.approx(0, abs=1e-6)
    assert results["prediction mse (frames 5+)"] == 0
    doubled = files["folder"] / "doubled.npz"  # two samples per clip: the truth, then noise
    videos = np.load(real)["videos"]
    noise = np.random.default_rng(0).integers(0, 256, videos.shape, dtype=np.uint8)
    np.savez(doubled, videos=np.stack([videos, noise], 1).reshape(-1, *videos.shape[1:]))
    assert main(["eval", str(doubled), "--judge", files["judge"], "--reference", real,
                 "--context-frames", "5", "--samples-per-clip", "2", "--json",
                 "--no-progress", "--threads", "1"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["prediction mse (best of 2, frames 5+)"] == 0
    assert results["prediction mse (mean of 2)"] > 100


def write(folder, name, **arrays):
    path = folder / name
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(("make", "options", "message"), [
    (lambda f: f / "missing.npz", [], "SAMPLES file not found"),
    (lambda f: write(f, "novideo.npz", clips=np.zeros((2, 8, 64, 64), np.uint8)), [], "has no 'videos' array"),
    (lambda f: write(f, "small.npz", videos=np.zeros((2, 8, 32, 32), np.uint8)), [], r"'videos' has shape \(2, 8, 32, 32\)"),
    (lambda f: write(f, "short.npz", videos=np.zeros((2, 4, 64, 64), np.uint8)), [], "4 frames per clip, fewer than 8"),
    (lambda f: write(f, "int.npz", videos=np.zeros((2, 8, 64, 64), np.int32)), [], r"'videos' is int32; expected .* uint8 \(or float in \[0, 1\]\)"),
    (lambda f: write(f, "range.npz", videos=np.full((2, 8, 64, 64), 255.0, np.float32)), [], r"finite values in \[0, 1\]"),
    (lambda f: write(f, "nocap.npz", videos=np.zeros((2, 8, 64, 64), np.uint8)), ["--captions"], "has no 'captions' array"),
    (lambda f: write(f, "ok.npz", videos=np.zeros((2, 8, 64, 64), np.uint8)), ["--context-frames", "4"], "need --reference"),
])
def test_bad_files_and_options_exit_2_with_a_message(files, capsys, make, options, message):
    path = make(files["folder"])
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(path), "--judge", files["judge"], "--no-progress", *options])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_sample_count_must_match_the_reference_for_prediction_error(files, capsys):
    with pytest.raises(SystemExit):
        evaluate(files, "--reference", files["real"], "--context-frames", "4",
                 "--samples-per-clip", "2")
    assert "expected 2 × 8 = 16 samples, got 8" in capsys.readouterr().err


def test_samples_is_the_default_kind(files, capsys):
    """`eval SAMPLES.npz` and `eval samples SAMPLES.npz` are one command with one output."""
    outputs = []
    for kind in ([], ["samples"]):
        assert main(["eval", *kind, files["samples"], "--judge", files["judge"], "--json",
                     "--no-progress"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] and outputs[0]["clips"] == 8


def test_the_figure_kinds(files, capsys):
    """`eval tokenizer` prints the reconstruction table; the others refuse a wrong file."""
    assert main(["eval", "tokenizer", "vqvae-frame", "--num", "2", "--classifier", ""]) == 0
    table = capsys.readouterr().out
    assert "vqvae-frame" in table and "psnr" in table.lower()
    with pytest.raises(SystemExit) as err:
        main(["eval", "videogpt", files["judge"], "--clips", "1"])  # the older spelling of --num
    assert err.value.code == 2
    assert "holds a Judge, not a VideoGPT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["eval", "tokenizer", "no-such-tokenizer"])
    assert err.value.code == 2 and "unknown pretrained model" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--temperature", "0"), ("--temperature", "-1"),
                                           ("--guidance", "-1")])
def test_eval_cogvideo_refuses_bad_sampling_options_before_sampling(capsys, option, value):
    with pytest.raises(SystemExit) as err:
        main(["eval", "cogvideo", "--num", "1", option, value])
    assert err.value.code == 2
    assert f"{option} must be" in capsys.readouterr().err

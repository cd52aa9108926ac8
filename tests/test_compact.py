"""The compact token stream and the one-prior VideoGPT recipe: empty code, NULL label, bf16."""

import json

import numpy as np
import pytest
import torch

from minivideo.__main__ import main as cli
from minivideo.checkpoints import (
    add_metrics,
    build_model_from_checkpoint,
    copy_checkpoint,
    export_weights,
    save_checkpoint,
    verify_checkpoint,
    write_manifest,
)
from minivideo.cli import train as train_command
from minivideo.metrics.videogpt_quality import quality_table
from minivideo.models import videogpt_compact
from minivideo.models.videogpt import (
    CLASS_GUIDANCE,
    VideoGPT,
    VideoGPTConfig,
    predict_clips,
    sample_videos,
    videogpt_loss,
)
from minivideo.models.videogpt_compact import EncodeBatch, build_model, compact_loss, stream
from minivideo.train import TrainConfig, fit
from minivideo.vqvae import (
    COMPACT_TOKENIZER_TARGET,
    FRAME_EMPTY_TOKENIZER_TARGET,
    ClipTokenizer,
    ClipTokenizerConfig,
    FrameTokenizer,
    FrameTokenizerConfig,
    VectorQuantizer,
    _pixel_clips,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------- empty code
def test_empty_cells_get_code_zero_and_no_other_cell_does():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 4, empty_code=True).train()
    z = torch.randn(64, 4)
    z[:20] = 0.0  # an inked cell may sit exactly on the zero vector: it still may not take 0
    empty = torch.zeros(64, dtype=torch.bool)
    empty[40:] = True
    for _ in range(5):  # init, EMA updates and restarts all run
        _, codes, _ = q(z, empty=empty)
    assert (codes[40:] == 0).all()
    assert (codes[:40] != 0).all()
    assert torch.equal(q.embedding[0], torch.zeros(4))  # never averaged or restarted


def test_an_empty_cell_passes_no_gradient_and_costs_no_commitment():
    torch.manual_seed(0)
    q = VectorQuantizer(8, 4, empty_code=True).train()
    z = torch.randn(6, 4, requires_grad=True)
    empty = torch.tensor([True, True, True, False, False, False])
    z_q, _, stats = q(z, empty=empty)
    (z_q.sum() + stats["loss"]).backward()
    assert torch.equal(z.grad[:3], torch.zeros(3, 4))
    assert (z.grad[3:] != 0).any()
    assert torch.equal(z_q[:3].detach(), torch.zeros(3, 4))


def test_a_dead_empty_code_is_not_restarted():
    q = VectorQuantizer(4, 2, empty_code=True, dead_threshold=0.9).train()
    z = torch.randn(32, 2) + 5.0
    for _ in range(20):  # code 0 is never used by ink, so its usage decays below the threshold
        q(z, empty=torch.zeros(32, dtype=torch.bool))
    assert float(q.usage[0]) < 0.9
    assert torch.equal(q.embedding[0], torch.zeros(2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(empty=torch.zeros(3, dtype=torch.bool)), "empty must be a bool tensor of shape"),
    (dict(empty=torch.zeros(6)), "empty must be a bool tensor"),
])
def test_bad_empty_masks_are_refused(kwargs, match):
    q = VectorQuantizer(4, 2, empty_code=True)
    with pytest.raises(ValueError, match=match):
        q(torch.randn(6, 2), **kwargs)


def test_a_quantizer_without_an_empty_code_refuses_a_mask():
    with pytest.raises(ValueError, match="no empty code"):
        VectorQuantizer(4, 2)(torch.randn(6, 2), empty=torch.zeros(6, dtype=torch.bool))


def test_the_compact_tokenizer_gives_256_tokens_and_codes_black_boxes_as_zero():
    model = ClipTokenizer(ClipTokenizerConfig.compact("tiny")).eval()
    assert model.tokens_per_clip(16) == 256
    video = torch.zeros(2, 16, 64, 64, dtype=torch.uint8)
    video[0, :4, 3, 3] = 255  # one bright pixel: only the box (t 0, h 0, w 0) is inked
    codes = model.encode(video)
    assert codes.shape == (2, 4, 8, 8)
    assert int(codes[0, 0, 0, 0]) != 0
    assert int((codes != 0).sum()) == 1
    assert ClipTokenizerConfig.compact("small").num_codes == 256


def test_a_tiny_compact_tokenizer_learns_in_seconds():
    torch.manual_seed(0)
    target = COMPACT_TOKENIZER_TARGET
    dataset = _pixel_clips("train", None, 0, 4)  # 4-frame clips: one latent step, fast
    model = target.build_model("tiny")
    config = TrainConfig(steps=200, batch_size=4, lr=3e-3, warmup_steps=10, progress=False,
                         device="cpu")
    result = fit(model, target.loss_fn, dataset, config)
    video = torch.stack([dataset[i]["video"] for i in range(16)]).float() / 255
    black = float(video.pow(2).mean())  # MSE of an all-black guess
    last = sum(h["recon_loss"] for h in result.history[-10:]) / 10
    first = result.history[0]["recon_loss"]
    assert last < 0.8 * black and last < 0.2 * first, (first, last, black)


def test_the_t2_tokenizer_halves_time_only_and_stays_causal():
    torch.manual_seed(0)
    model = ClipTokenizer(ClipTokenizerConfig.compact("tiny", time_down=2)).eval()
    assert model.latent_shape(16) == (8, 8, 8) and model.tokens_per_clip(16) == 512
    assert ClipTokenizerConfig.compact("small", time_down=2).num_codes == 512
    video = torch.randint(0, 256, (2, 16, 64, 64), dtype=torch.uint8)
    # the codes of frames 0-7 alone are the clip's first 4 latent steps: nothing leaks back
    assert torch.equal(model.encode(video[:, :8]), model.encode(video)[:, :4])
    changed = video.clone()
    changed[:, 8:] = 0
    assert torch.equal(model.encode(changed)[:, :4], model.encode(video)[:, :4])
    assert not torch.equal(model.encode(changed)[:, 4:], model.encode(video)[:, 4:])


def test_the_frame_tokenizer_with_an_empty_code_codes_black_cells_as_zero_frame_by_frame():
    torch.manual_seed(0)
    model = FrameTokenizer(FrameTokenizerConfig.preset("tiny", empty_code=True)).eval()
    video = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    video[0, 1, 10, 60] = 255  # one bright pixel: only cell (h 1, w 7) of frame 1 is inked
    video[1, 2, 63, 0] = 12  # below the threshold (0.05 · 255): still empty
    codes = model.encode(video)
    assert codes.shape == (2, 3, 8, 8)
    assert int(codes[0, 1, 1, 7]) != 0 and int((codes != 0).sum()) == 1
    # without the empty code the same black frames spread over the codebook's other codes
    plain = FrameTokenizer(FrameTokenizerConfig.preset("tiny")).eval()
    assert int((plain.encode(video) != 0).sum()) > 1
    assert model.decode(codes).shape == (2, 3, 64, 64)


def test_a_tiny_frame_tokenizer_with_an_empty_code_learns_in_seconds():
    torch.manual_seed(0)
    target = FRAME_EMPTY_TOKENIZER_TARGET
    dataset = _pixel_clips("train", None, 0, 4)
    model = target.build_model("tiny")
    assert model.config.empty_code
    config = TrainConfig(steps=150, batch_size=4, lr=3e-3, warmup_steps=10, progress=False,
                         device="cpu")
    result = fit(model, target.loss_fn, dataset, config)
    video = torch.stack([dataset[i]["video"] for i in range(16)]).float() / 255
    black = float(video.pow(2).mean())
    last = sum(h["recon_loss"] for h in result.history[-10:]) / 10
    first = result.history[0]["recon_loss"]
    assert last < 0.8 * black and last < 0.2 * first, (first, last, black)
    codes = model.eval().encode(video)
    ink = torch.nn.functional.max_pool2d(video.flatten(0, 1)[:, None], 8)[:, 0] >= 0.05
    assert torch.equal(codes.flatten(0, 1) == 0, ~ink)  # background is one symbol, ink never is


def test_a_bad_empty_threshold_is_refused():
    with pytest.raises(ValueError, match="empty_threshold must be in"):
        FrameTokenizerConfig(empty_code=True, empty_threshold=1.5)


def test_compact_presets_refuse_other_time_factors():
    with pytest.raises(ValueError, match="time_down must be 2 or 4"):
        ClipTokenizerConfig.compact("small", time_down=8)


# --------------------------------------------------------------------------- one prior
def _prior(**overrides) -> VideoGPT:
    config = dict(num_codes=32, grid=(4, 8, 8), tokenizer="vqvae-compact", null_class=True,
                  class_dropout=0.1)
    return VideoGPT(VideoGPTConfig.preset("tiny", "class", **{**config, **overrides}))


def test_the_null_label_is_its_own_token_and_stands_for_no_digits():
    model = _prior()
    assert model.config.vocab_size == 32 + 10 + 2
    prefix = model.prefix(3, None)
    assert prefix.tolist() == [[model.config.null] * 2] * 3
    assert model.prefix(1, torch.tensor([[7, 3]])).tolist() == [[32 + 3, 32 + 7]]


@pytest.mark.parametrize("overrides, match", [
    (dict(class_dropout=0.2, null_class=False), "needs null_class"),
    (dict(class_dropout=1.0), r"class_dropout must be in \[0, 1\)"),
])
def test_bad_one_prior_configs_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        _prior(**overrides)


def test_null_class_needs_a_class_prior():
    with pytest.raises(ValueError, match="null_class needs cond='class'"):
        VideoGPTConfig(cond="none", null_class=True)


def test_condition_dropout_replaces_labels_only_in_training(fed_prefixes):
    torch.manual_seed(0)
    model = _prior(class_dropout=0.5)
    codes = torch.randint(0, 32, (64, 4, 8, 8))
    digits = torch.randint(0, 10, (64, 2))
    trained = fed_prefixes(model.train(), codes, digits)
    evaluated = fed_prefixes(model.eval(), codes, digits)
    dropped = (trained == model.config.null).all(dim=1).float().mean()
    assert 0.3 < float(dropped) < 0.7
    assert not (evaluated == model.config.null).any()


def test_prediction_keeps_the_given_codes_and_matches_full_sampling_otherwise():
    torch.manual_seed(0)
    model = _prior().eval()
    given = torch.randint(1, 32, (2, 2, 8, 8))
    codes = model.sample_codes(2, given=given, seed=3)
    assert torch.equal(codes[:, :2], given)
    assert codes.shape == (2, 4, 8, 8)
    assert not torch.equal(codes[:, 2:], codes[:, 2:].flip(0))  # two different futures


def test_guidance_needs_the_null_label_and_digits():
    model = _prior().eval()
    with pytest.raises(ValueError, match="guidance needs"):
        model.sample_codes(1, guidance=2.0)
    plain = VideoGPT(VideoGPTConfig.preset("tiny", "class", num_codes=32, grid=(4, 8, 8)))
    with pytest.raises(ValueError, match="guidance needs"):
        plain.sample_codes(1, digits=torch.tensor([[1, 2]]), guidance=2.0)
    guided = model.sample_codes(2, digits=torch.tensor([[1, 2], [3, 4]]), guidance=3.0, seed=1)
    assert guided.shape == (2, 4, 8, 8) and int(guided.max()) < 32


def test_the_recipe_streams_fresh_clips_and_encodes_them_in_the_collate():
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny")).eval()
    data = stream("train", seed=0)
    assert len(data) > 10**9  # endless: no clip is seen twice
    batch = EncodeBatch(tokenizer)([data[i] for i in range(3)])
    assert batch["codes"].shape == (3, 4, 8, 8) and batch["digits"].shape == (3, 2)
    assert torch.equal(batch["codes"], tokenizer.encode(torch.stack(
        [data[i]["video"] for i in range(3)])))


def test_a_tiny_one_prior_learns_the_background_in_seconds():
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny")).eval()
    model = build_model("tiny", tokenizer)
    config = TrainConfig(steps=60, batch_size=8, lr=3e-3, warmup_steps=5, progress=False,
                         device="cpu")
    result = fit(model, videogpt_loss, stream("train", 0), config,
                 collate_fn=EncodeBatch(tokenizer))
    first = result.history[0]["bits_per_token"]
    last = sum(h["bits_per_token"] for h in result.history[-10:]) / 10
    # log2(32) = 5 bits for a uniform guess; two thirds of the codes are the empty code
    assert first > 4.5 and last < 2.5, (first, last)


def test_the_training_loss_encodes_clips_as_the_collate_does(monkeypatch):
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny")).eval()
    model = build_model("tiny", tokenizer).eval()
    data = stream("train", seed=0)
    items = [data[i] for i in range(4)]
    videos = torch.stack([item["video"] for item in items])
    digits = torch.stack([torch.as_tensor(item["digits"]) for item in items])
    # the loss encodes with the tokenizer the prior names, here the untrained tiny one
    names = []
    monkeypatch.setattr(videogpt_compact, "shipped_tokenizer",
                        lambda name: names.append(name) or tokenizer)
    from_clips, _ = compact_loss(model, {"video": videos, "digits": digits})
    from_codes, _ = videogpt_loss(model, EncodeBatch(tokenizer)(items))
    assert torch.equal(from_clips, from_codes) and names == ["vqvae-compact"]


# --------------------------------------------------------------------------- bf16 on the CPU
def test_cpu_bf16_runs_the_loss_under_bf16_autocast_and_still_learns():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    x = torch.randn(64, 8)
    y = x @ torch.arange(8.0)[:, None]
    dtypes = []

    def loss_fn(m, batch):
        out = m(batch["x"])
        dtypes.append(out.dtype)
        return (out.float() - batch["y"]).pow(2).mean(), {}

    data = [{"x": x[i], "y": y[i]} for i in range(64)]
    config = TrainConfig(steps=150, batch_size=16, lr=0.1, warmup_steps=5, progress=False,
                         device="cpu", cpu_bf16=True)
    result = fit(model, loss_fn, data, config)
    assert dtypes[0] == torch.bfloat16
    assert result.history[-1]["loss"] < 0.05 * result.history[0]["loss"]
    assert model.weight.dtype == torch.float32  # the weights stay float32


# --------------------------------------------------------------------------- run extras
def test_the_train_command_keeps_steps_exports_weights_and_counts_time_across_sittings(
        tmp_path, monkeypatch):
    common = ["train", "vqvae-frame", "--config", "tiny", "--steps", "6", "--save-every", "2",
              "--keep-every", "2", "--no-eval", "--no-progress"]
    out, shipped = tmp_path / "run.pt", tmp_path / "ship" / "tok.pt"

    def crashing_fit(*args, on_step=None, **kwargs):
        def step_then_crash(step, record):
            on_step(step, record)  # the command's keeper
            if step == 4:
                raise KeyboardInterrupt  # the sitting ends after the save at step 4

        return fit(*args, on_step=step_then_crash, **kwargs)

    monkeypatch.setattr(train_command, "fit", crashing_fit)
    with pytest.raises(KeyboardInterrupt):
        cli([*common, "--out", str(out)])
    first_sitting = torch.load(out, weights_only=False)["seconds"]
    monkeypatch.undo()
    assert cli([*common, "--out", str(out), "--resume", "--export", str(shipped)]) == 0
    full, light = torch.load(out, weights_only=False), torch.load(shipped, weights_only=False)
    # the kept steps: 2 and 4 from the first sitting, 6 from the second
    kept = sorted(p.name for p in tmp_path.glob("run-step*.pt"))
    assert kept == ["run-step000002.pt", "run-step000004.pt", "run-step000006.pt"]
    last_kept = torch.load(tmp_path / "run-step000006.pt", weights_only=False)
    assert last_kept["step"] == 6 and last_kept["seconds"] > first_sitting > 0
    assert full["seconds"] >= last_kept["seconds"]
    # the export: the same weights, no optimiser or RNG state, its own manifest
    assert "optimizer" in full and "optimizer" not in light and "rng" not in light
    assert light["history"] == full["history"][::10] and light["history_stride"] == 10
    for key, value in full["model"].items():
        assert torch.equal(value, light["model"][key]), key
    manifest = json.loads(shipped.with_suffix(".json").read_text())
    assert manifest["file"] == "tok.pt" and manifest["size_bytes"] < out.stat().st_size
    # the command that made both files, --export included (but not --resume)
    assert f"--export {shipped}" in manifest["command"] and "--keep-every 2" in manifest["command"]
    assert "--resume" not in manifest["command"]
    assert manifest["train_seconds"] == pytest.approx(full["history"][-1]["seconds"], abs=0.1)


def test_export_must_be_another_pt_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli(["train", "vqvae-frame", "--config", "tiny", "--out", str(tmp_path / "a.pt"),
             "--export", str(tmp_path / "a.pt")])
    assert "--export must be another file name ending in .pt" in capsys.readouterr().err


def test_a_time_budget_shortens_the_schedule_and_is_recorded(tmp_path):
    torch.manual_seed(0)
    data = [{"x": torch.randn(4)} for _ in range(64)]

    def loss_fn(m, batch):
        return m(batch["x"]).pow(2).mean(), {}

    def run(minutes):
        config = TrainConfig(steps=200, batch_size=8, lr=0.01, warmup_steps=5, progress=False,
                             device="cpu", minutes=minutes)
        out = tmp_path / f"{minutes}.pt"
        result = fit(torch.nn.Linear(4, 1), loss_fn, data, config, checkpoint=out)
        return result, torch.load(out, weights_only=False), config

    spent, state, config = run(1e-9)  # over budget at the measurement: one more step, then stop
    assert spent.step == 41 and len(spent.history) == 41 and state["step"] == 41
    assert state["train_config"]["steps"] == 41 and config.steps == 200  # the caller's is kept
    # the cosine reaches its floor at the chosen last step
    assert spent.history[-1]["lr"] == pytest.approx(0.001, rel=0.05)
    ample, state, _ = run(60.0)  # far more time than 200 steps need: the schedule is unchanged
    assert ample.step == 200 and state["train_config"]["steps"] == 200
    with pytest.raises(ValueError, match="minutes must be > 0"):
        TrainConfig(minutes=0)


def test_a_half_export_is_half_the_size_and_loads_as_float32(tmp_path):
    common = ["train", "vqvae-frame", "--config", "tiny", "--steps", "3", "--no-eval",
              "--no-progress", "--out", str(tmp_path / "run.pt")]
    assert cli([*common, "--export", str(tmp_path / "full.pt")]) == 0
    assert cli([*common, "--export", str(tmp_path / "half.pt"), "--export-half"]) == 0
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    stored = torch.load(half, weights_only=False)
    assert stored["weights_dtype"] == "float16"
    assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {torch.float16}
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a, b = build_model_from_checkpoint(full).eval(), build_model_from_checkpoint(half).eval()
    assert all(p.dtype == torch.float32 for p in b.parameters())
    video = torch.rand(2, 4, 64, 64)
    assert torch.allclose(a(video)[0], b(video)[0], atol=2e-2)
    assert not torch.equal(a(video)[0], b(video)[0])  # really rounded
    assert export_weights(full, tmp_path / "again.pt", half=True).stat().st_size == pytest.approx(
        half.stat().st_size, rel=0.05)


def test_evaluate_only_adds_figures_to_the_manifest_of_a_no_eval_run(tmp_path, monkeypatch,
                                                                   capsys):
    out = tmp_path / "run.pt"
    common = ["train", "vqvae-frame", "--config", "tiny", "--no-progress", "--out", str(out)]
    assert cli([*common, "--steps", "2", "--no-eval"]) == 0
    trained = json.loads(out.with_suffix(".json").read_text())
    assert trained["metrics"] == {}
    seen = []

    def evaluation(model):  # a stand-in that proves it got the trained weights from the file
        seen.append(model)
        return {"weight_sum": float(sum(p.sum() for p in model.parameters()))}

    monkeypatch.setattr(train_command, "resolve_evaluation", lambda name, target: evaluation)
    assert cli([*common, "--evaluate-only"]) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    weights = torch.load(out, weights_only=False)["model"]
    expected = float(sum(v.sum() for k, v in weights.items()
                         if k in dict(seen[0].named_parameters())))
    assert manifest["metrics"]["weight_sum"] == pytest.approx(expected, rel=1e-6)
    assert not seen[0].training
    # how the weights were made stays; how they were measured is added
    for key in ("command", "sha256", "train_seconds", "device", "step"):
        assert manifest[key] == trained[key], key
    assert "--evaluate-only" in manifest["metrics_command"]
    assert manifest["metrics_device"].startswith("cpu")
    verify_checkpoint(out)
    # a copy under another name keeps the manifest, renamed; a changed file takes no figures
    shipped = copy_checkpoint(out, tmp_path / "ship" / "tok.pt")
    assert verify_checkpoint(shipped)["file"] == "tok.pt"
    shipped.write_bytes(shipped.read_bytes() + b"x")
    with pytest.raises(ValueError, match="does not match its manifest"):
        add_metrics(shipped, {}, command="c", device="cpu")
    with pytest.raises(SystemExit):
        cli(["train", "vqvae-frame", "--out", str(tmp_path / "none.pt"), "--evaluate-only"])
    assert "--evaluate-only measures a checkpoint" in capsys.readouterr().err


def test_class_samples_of_the_one_prior_are_guided_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVIDEO_CHECKPOINTS", str(tmp_path))
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny"))
    with torch.no_grad():  # far-apart code vectors: different codes decode to different pixels
        tokenizer.quantizer.embedding.normal_(0, 20)
    path = save_checkpoint(tmp_path / "vqvae-compact.pt", model=tokenizer)
    write_manifest(path, command="test", data_seed=0, train_seconds=0, device="cpu", metrics={})
    prior = _prior()
    path = save_checkpoint(tmp_path / "videogpt.pt", model=prior,
                           model_config=prior.config_dict())
    write_manifest(path, command="test", data_seed=0, train_seconds=0, device="cpu", metrics={})

    def sample(*extra):
        out = tmp_path / f"s{len(extra)}{''.join(extra)}.npz"
        assert cli(["sample", "videogpt", "--cond", "class", "--digits", "3,7", "--num", "2",
                    "--out", str(out), "--no-progress", *extra]) == 0
        with np.load(out) as saved:
            return saved["videos"]

    default, three, one = sample(), sample("--guidance", "3"), sample("--guidance", "1")
    assert CLASS_GUIDANCE == 3.0
    assert np.array_equal(default, three) and not np.array_equal(default, one)


@pytest.mark.parametrize(("extra", "message"), [
    (["--export-half"], "--export-half needs --export"),
    (["--minutes", "0"], "--minutes must be a positive number"),
])
def test_bad_budget_and_export_options_are_refused(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        cli(["train", "vqvae-frame", "--config", "tiny", "--out", str(tmp_path / "a.pt"), *extra])
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- prediction, figures
def test_predict_clips_keeps_the_context_frames_and_their_codes():
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny")).eval()
    model = build_model("tiny", tokenizer).eval()
    data = stream("test", seed=5, num_clips=2)
    video = torch.stack([data[i]["video"] for i in range(2)])
    out = predict_clips(model, tokenizer, video[:, :8], seed=0)
    assert out.shape == (2, 16, 64, 64)
    assert torch.equal(out[:, :8], video[:, :8].float() / 255)  # the context, as given
    # the future is the decoder's view of the sampled codes after the forced context codes
    given = tokenizer.encode(video[:, :8])
    codes = model.sample_codes(2, given=given, seed=0)
    assert torch.allclose(out[:, 8:], tokenizer.decode(codes)[:, 8:])
    with pytest.raises(ValueError, match="multiple of 4 frames"):
        predict_clips(model, tokenizer, video[:, :6])
    plain = VideoGPT(VideoGPTConfig.preset("tiny", "class", num_codes=32, grid=(4, 8, 8)))
    with pytest.raises(ValueError, match="needs a prior with null_class"):
        predict_clips(plain, tokenizer, video[:, :8])


def test_the_quality_table_shows_every_figure_of_a_one_prior_manifest():
    row = {"test_bits_per_code": 1.234, "judge_reads_requested": 0.5,
           "judge_reads_requested_guided": 0.75, "guidance": 2.0, "judge_reads_real": 0.9,
           "mse": 100.0, "ssim": 0.7, "psnr": 15.0, "judge_digits_predicted": 0.6,
           "judge_digits_true_future": 0.85, "frechet_samples": 50.0,
           "frechet_real_vs_real": 30.0, "frechet_first_frame_repeated": 120.0, "test_clips": 64}
    table = quality_table({"class": row, "frames": row, "none": row})
    assert "| class | 1.23 | judge reads the requested digits | 50% (guidance 2: 75%)" in table
    assert "judge reads both digits in the prediction | 60% | in the true future: 85%" in table
    assert "| 50 | real vs real 30; first frame repeated 120 |" in table


def test_the_typed_sampler_serves_every_conditioning_of_one_prior():
    torch.manual_seed(0)
    tokenizer = ClipTokenizer(ClipTokenizerConfig.compact("tiny")).eval()
    with torch.no_grad():  # far-apart code vectors: different codes decode to different pixels
        tokenizer.quantizer.embedding.normal_(0, 20)
    prior = _prior()
    context = torch.zeros(2, prior.config.time_down, 64, 64, dtype=torch.uint8)
    for cond, extra in (("none", {}), ("class", {"digits": [3, 7]}),
                        ("frames", {"context": context})):
        videos = sample_videos(prior, tokenizer, 2, cond=cond, seed=0, **extra)
        assert videos.shape == (2, 16, 64, 64) and videos.dtype == np.uint8, cond
        assert np.array_equal(videos, sample_videos(prior, tokenizer, 2, cond=cond, seed=0,
                                                    **extra)), cond  # seeded
    # class samples: guidance 1 (none) differs from the default CLASS_GUIDANCE
    guided = sample_videos(prior, tokenizer, 2, cond="class", digits=[3, 7])
    assert not np.array_equal(guided, sample_videos(prior, tokenizer, 2, cond="class",
                                                    digits=[3, 7], guidance=1.0))
    for kwargs, message in (
        (dict(cond="class"), "digits are given exactly when cond='class'"),
        (dict(cond="none", digits=[3, 7]), "digits are given exactly when cond='class'"),
        (dict(cond="frames"), "context frames are given exactly when cond='frames'"),
        (dict(cond="frames", context=context[:1]), "context must hold num=2 clips, got 1"),
        (dict(cond="none", guidance=2.0), "guidance needs cond='class'"),
        (dict(cond="color"), "cond must be one of"),
    ):
        with pytest.raises(ValueError, match=message):
            sample_videos(prior, tokenizer, 2, **kwargs)

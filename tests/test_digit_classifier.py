"""The digit classifier behind the legibility figure: data, learning, the shipped checkpoint."""

import json

import pytest
import torch

from minivideo.metrics import digit_classifier as dc
from minivideo.pretrained import checkpoints_dir, pretrained
from minivideo.train import fit


def test_forward_shapes_and_uint8_equals_float():
    torch.manual_seed(0)
    model = dc.DigitClassifier().eval()
    digits = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    logits = model(digits)
    assert logits.shape == (5, 10)
    assert torch.allclose(logits, model(digits.float() / 255))
    assert model.predict(digits).shape == (5,)


def test_shifted_digits_are_seeded_and_bounded():
    data = dc.ShiftedDigits("train", max_shift=2, seed=0)
    assert len(data) == 4000
    assert torch.equal(data[7]["digit"], dc.ShiftedDigits("train", 2, seed=0)[7]["digit"])
    unshifted = dc.ShiftedDigits("train", max_shift=0)[7]["digit"]
    # a shift by (dy, dx) in [-2, 2]² is one of 25 rolls of the original
    rolls = [torch.roll(unshifted, (dy, dx), (0, 1)) for dy in range(-2, 3) for dx in range(-2, 3)]
    assert any(torch.equal(data[7]["digit"], r) for r in rolls)
    assert data[7]["label"] == dc.ShiftedDigits("train", max_shift=0)[7]["label"]


def test_the_tiny_schedule_learns_to_read_digits():
    torch.manual_seed(0)
    target = dc.TARGET
    result = fit(target.build_model("tiny"), target.loss_fn, target.build_dataset("tiny", 0),
                 target.train_config("tiny", progress=False, device="cpu"))
    accuracy = dc.evaluate_classifier(result.model)["test_digit_accuracy"]
    # measured on seed 0: loss 2.30 → 0.93, test accuracy 0.73 after 60 steps (chance: 0.1)
    assert result.history[-1]["loss"] < 0.6 * result.history[0]["loss"]
    assert accuracy > 0.6, accuracy


def test_the_shipped_classifier_reaches_its_manifest_figure():
    manifest = json.loads((checkpoints_dir() / "digit-classifier.json").read_text())
    assert manifest["model_class"] == "minivideo.metrics.digit_classifier:DigitClassifier"
    assert manifest["command"].startswith("python -m minivideo train digit-classifier")
    figures = dc.evaluate_classifier(pretrained("digit-classifier"))
    assert figures.keys() == manifest["metrics"].keys()
    # the same figure, up to a digit or two of 1,000 flipping on another machine's arithmetic
    assert figures["test_digit_accuracy"] == pytest.approx(
        manifest["metrics"]["test_digit_accuracy"], abs=0.002)
    assert figures["test_digit_accuracy"] >= 0.95


@pytest.mark.parametrize(
    ("digits", "error", "match"),
    [
        (torch.zeros(2, 1, 28, 28), ValueError, r"digits must have shape \(b, 28, 28\)"),
        (torch.zeros(2, 32, 32), ValueError, r"got \(2, 32, 32\)"),
        (torch.zeros(2, 28, 28, dtype=torch.int64), TypeError, "uint8 or float"),
        ([[0.0] * 28] * 28, TypeError, "digits must be a torch.Tensor"),
    ],
)
def test_bad_input_gives_clear_errors(digits, error, match):
    with pytest.raises(error, match=match):
        dc.DigitClassifier()(digits)

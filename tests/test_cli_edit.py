"""`python -m minivideo edit`: re-sample a region or a digit's path, keep the rest, clear errors."""

import re

import numpy as np
import pytest
import torch

from minivideo.__main__ import main
from minivideo.pretrained import available_pretrained, pretrained

pytestmark = pytest.mark.skipif(
    not {"vqvae-compact", "videogpt"} <= set(available_pretrained()),
    reason="needs the shipped vqvae-compact and videogpt checkpoints")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    path = tmp_path_factory.mktemp("edit") / "clips.npz"
    assert main(["data", "--split", "test", "--num", "2", "--frames", "16", "--out", str(path),
                 "--no-progress"]) == 0
    return path


def test_a_region_is_repainted_and_the_rest_kept(clips, tmp_path):
    out = tmp_path / "edited.npz"
    assert main(["edit", str(clips), "--region", "8,15", "--box", "0,32,64,64", "--cond", "none",
                 "--out", str(out)]) == 0
    with np.load(out) as edited, np.load(clips) as original:
        videos, mask = edited["videos"], edited["edit_mask"]
        assert videos.shape == (2, 16, 64, 64) and videos.dtype == np.uint8
        assert np.array_equal(edited["original"], original["videos"])
    # the codes of frames 8-15 (the second half of the code steps) in the right half (columns
    # 4-7), nothing else
    tokenizer = pretrained(pretrained("videogpt").config.tokenizer)
    t, h, w = tokenizer.latent_shape(16)  # (8, 8, 8): vqvae-compact-t2
    expected = np.zeros((t, h, w), dtype=bool)
    expected[t // 2 :, :, w // 2 :] = True
    assert (mask == expected).all()
    reconstruction = tokenizer.decode(tokenizer.encode(torch.from_numpy(original_videos(clips))))
    got = torch.from_numpy(videos).float() / 255
    # far from the region (frames 0-3, left half) the kept codes decode almost as before (the
    # decoder's axial attention lets every code touch every pixel a little); inside it the prior
    # drew new codes, and the pixels there changed far more
    far = (got[:, :4, :, :24] - reconstruction[:, :4, :, :24]).abs().mean()
    inside = (got[:, 8:, :, 36:] - reconstruction[:, 8:, :, 36:]).abs().mean()
    assert far < 0.01 and inside > 5 * far, (far, inside)


def original_videos(path):
    with np.load(path) as data:
        return data["videos"]


def test_a_trajectory_can_be_redrawn_with_other_digits_as_a_gif(clips, tmp_path):
    out = tmp_path / "swap.gif"
    assert main(["edit", str(clips), "--trajectory", "0", "--new-digits", "5,7", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(("argv", "match"), [
    (["--region", "8"], "--region must be 2 comma-separated ints"),
    (["--region", "8,20"], "frames must be"),
    (["--region", "0,3", "--box", "0,0,64"], "--box must be 4"),
    (["--trajectory", "5"], r"--trajectory must be a digit slot in \[0, 2\)"),
    (["--region", "0,3", "--cond", "none", "--new-digits", "1,2"], "--new-digits needs --cond class"),
    (["--region", "0,3", "--new-digits", "1,12"], "digits 0-9"),
    (["--region", "0,3", "--rounds", "-1"], "--rounds must be >= 0"),
])
def test_bad_options_exit_with_a_clear_error(clips, tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as exit_:
        main(["edit", str(clips), *argv, "--out", str(tmp_path / "x.npz")])
    assert exit_.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def test_a_file_without_the_needed_arrays_is_refused(tmp_path, capsys):
    bare = tmp_path / "bare.npz"
    np.savez(bare, videos=np.zeros((1, 16, 64, 64), dtype=np.uint8))
    with pytest.raises(SystemExit):
        main(["edit", str(bare), "--trajectory", "0", "--out", str(tmp_path / "x.npz")])
    assert "no 'positions' array" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, videos=np.zeros((1, 8, 64, 64), dtype=np.uint8))
    with pytest.raises(SystemExit):
        main(["edit", str(wrong), "--region", "0,3", "--cond", "none", "--out", str(tmp_path / "y.npz")])
    assert "'videos' has 8 frames per clip; expected an .npz holding 'videos', a uint8 array " \
        "N×16×64×64" in capsys.readouterr().err

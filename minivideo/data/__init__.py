"""Moving MNIST: digits (bundled or full MNIST), the generator, captions, datasets, video files."""

from minivideo.data.captions import (
    MAX_LENGTH,
    MAX_SEGMENTS,
    VOCAB,
    CaptionTokenizer,
    ParsedDigit,
    caption_from_motion,
    captions_for,
    parse_caption,
)
from minivideo.data.datasets import (
    CachedMovingMNIST,
    MovingMNIST,
    OfficialMovingMNIST,
    generate_arrays,
    item_motion,
    load_clips,
    save_clips,
)
from minivideo.data.mnist import load_digits
from minivideo.data.moving_mnist import (
    COMPASS,
    DigitMotion,
    MovingMNISTBatch,
    MovingMNISTConfig,
    generate_clips,
    load_official_test_set,
    motion_arrays,
    summarize_motion,
)
from minivideo.data.video_files import VideoFileError, load_video_file, read_npz

__all__ = [
    "COMPASS", "MAX_LENGTH", "MAX_SEGMENTS", "VOCAB", "CachedMovingMNIST", "CaptionTokenizer",
    "DigitMotion", "MovingMNIST", "MovingMNISTBatch", "MovingMNISTConfig", "OfficialMovingMNIST",
    "ParsedDigit", "VideoFileError", "caption_from_motion", "captions_for", "generate_arrays",
    "generate_clips", "item_motion", "load_clips", "load_digits", "load_official_test_set",
    "load_video_file", "motion_arrays", "parse_caption", "read_npz", "save_clips",
    "summarize_motion",
]

"""Moving MNIST: digits (bundled or full MNIST), the generator, captions and datasets."""

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

__all__ = [
    "COMPASS", "MAX_LENGTH", "MAX_SEGMENTS", "VOCAB", "CachedMovingMNIST", "CaptionTokenizer",
    "DigitMotion", "MovingMNIST", "MovingMNISTBatch", "MovingMNISTConfig", "OfficialMovingMNIST",
    "ParsedDigit", "caption_from_motion", "captions_for", "generate_arrays", "generate_clips",
    "item_motion", "load_clips", "load_digits", "load_official_test_set", "motion_arrays",
    "parse_caption", "save_clips", "summarize_motion",
]

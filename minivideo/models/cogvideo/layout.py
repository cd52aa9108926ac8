"""CogVideo-mini's token layout: every id, size, caption, mask and sequence, without weights.

The constants of the hierarchy (caption length, clip length, frame rates), the captions that
frames and training windows are trained under, the two attention masks of a dual-channel layer,
the configs that fix each token id (`CogViewConfig.boi`, `CogVideoConfig.rate_token`), the
sequences the models read and the windows of frames the stages train on. The vocabulary is
drawn in the package docstring (`minivideo.models.cogvideo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange, repeat

from minivideo.data.captions import (
    DIGIT_WORDS,
    MAX_DIGITS,
    MAX_LENGTH,
    MAX_SEGMENTS,
    VOCAB,
    CaptionTokenizer,
    caption_from_motion,
    parse_caption,
)
from minivideo.data.moving_mnist import COMPASS, DigitMotion, MovingMNISTConfig
from minivideo.masks import local_window_mask, prefix_mask

PRESETS = ("tiny", "small", "full")
STAGES = ("keyframes", "interp")
TEXT_LEN = MAX_LENGTH  # 26 caption tokens, padded
CLIP_FRAMES = 17  # the generated clip: 5 key frames 4 apart, filled in twice
NUM_KEYFRAMES = 5
KEYFRAME_STRIDE = 4
FRAME_STRIDES = (1, 2, 4)  # frame-rate tokens: source frames between consecutive frames
POINTERS = ("none", "caption", "timed", "bound")  # CogVideoConfig.pointer (see pointer.py)
STAGE_STRIDES = {"keyframes": (1, 2, 4), "interp": (1, 2)}
# Stage 1 trains mostly at the rate it samples at, plus the higher rates (as CogVideo trains at
# several frame rates): the model sees more, shorter motions of the same captions.
KEYFRAME_STRIDE_WEIGHTS = {4: 0.5, 2: 0.25, 1: 0.25}
CAPTION_DROPOUT = 0.1  # probability that a training caption is replaced by pads (for CFG)
# The stages' clips: digits move at "any" angle (the paper's Moving MNIST) or along the 8
# "compass" words, 4 px per frame per coordinate, so a key frame (stride 4) moves a digit by two
# whole 8-px cells and a stride-8 tokenizer gives the moved digit its old codes, shifted.
MOTIONS = ("any", "compass")
COMPASS_STEP_PX = 4
# Digits per training clip (CogVideoConfig.digits): the paper's clips hold 2; a stage trained on
# clips of 1 draws one layer of a layered clip, and the layers of a prompt's clauses are drawn
# apart and composed in pixels (`layers.layered_text_to_video`), as Moving MNIST itself is.
LAYERS = (1, 2)
UNTRAINED_TINY = "untrained-tiny"  # tokenizer name of tests and tiny presets (seed 0)
_CAPTIONS = CaptionTokenizer()


def clip_config(motion: str = "any", num_frames: int = CLIP_FRAMES,
                step_px: float = COMPASS_STEP_PX, digits: int = 2) -> MovingMNISTConfig:
    """The Moving MNIST generator of clips whose digits move as `motion` says (see `MOTIONS`);
    compass digits move step_px per frame per axis (36 / step_px must be a whole number).
    `digits` per clip: 2 (the paper's), or 1 (one layer of a layered clip, `LAYERS`)."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    if digits not in LAYERS:
        raise ValueError(f"digits must be one of {LAYERS}, got {digits!r}")
    if motion == "any":
        return MovingMNISTConfig(num_frames=num_frames, num_digits=digits)
    free = MovingMNISTConfig().free_size
    return MovingMNISTConfig(num_frames=num_frames, directions="compass", bounce="mirror",
                             step_length=step_px / free, num_digits=digits)


# --------------------------------------------------------------------------- captions
def quadrant(position: np.ndarray, config: MovingMNISTConfig | None = None) -> str:
    """Compass word of the quadrant of a digit whose top-left corner is at (y, x) pixels."""
    config = MovingMNISTConfig() if config is None else config
    centre = np.asarray(position, dtype=np.float64) + config.digit_size / 2
    half = config.canvas_size / 2
    vertical = "up" if centre[0] < half else "down"
    horizontal = "left" if centre[1] < half else "right"
    return f"{vertical}-{horizontal}"


# The order of a frame caption's clauses: the clip's digit slots (random with respect to the
# picture), or reading order (by quadrant: up-left, up-right, down-left, down-right; then by the
# digit's top-left corner), so that the first digit word names the digit drawn first.
CAPTION_ORDERS = ("slots", "reading")
_READING = ("up-left", "up-right", "down-left", "down-right")


def frame_caption(digits: np.ndarray, positions: np.ndarray, order: str = "slots") -> str:
    """Stage 0's caption of one frame: each digit and its quadrant, e.g. "digit 3 up-left",
    its clauses in `order` (`CAPTION_ORDERS`)."""
    digits, positions = np.asarray(digits), np.asarray(positions)
    if digits.ndim != 1 or positions.shape != (len(digits), 2):
        raise ValueError(f"digits must be (k,) and positions (k, 2); got {digits.shape} and "
                         f"{positions.shape}")
    if order not in CAPTION_ORDERS:
        raise ValueError(f"order must be one of {CAPTION_ORDERS}, got {order!r}")
    clauses = [(quadrant(p), float(p[0]), float(p[1]), int(d))
               for d, p in zip(digits, positions, strict=True)]
    if order == "reading":
        clauses.sort(key=lambda c: (_READING.index(c[0]), c[1], c[2]))
    return " and ".join(f"digit {d} {q}" for q, _, _, d in clauses)


def motion_caption(digits: np.ndarray, directions: np.ndarray) -> str:
    """The motion caption of a stretch of frames from per-frame compass indices (t, k)."""
    directions = np.asarray(directions)
    motion = []
    for slot, digit in enumerate(np.asarray(digits)):
        sequence = directions[:, slot]
        keep = np.concatenate([[True], sequence[1:] != sequence[:-1]])  # collapse repeats
        words = tuple(COMPASS[int(d)] for d in sequence[keep])
        motion.append(DigitMotion(int(digit), words[0], words, ()))
    return caption_from_motion(motion)


# (digit, direction) pairs that the video stages never train on (issue 15): a digit is never
# captioned moving this way, so a prompt made of these pairs asks for combinations unseen in
# training. One direction per digit; the course's demo prompt is one of them.
HELD_OUT_PAIRS: tuple[tuple[int, str], ...] = (
    (0, "up"), (1, "right"), (2, "down-left"), (3, "left"), (4, "up-right"),
    (5, "down"), (6, "left"), (7, "down"), (8, "up-left"), (9, "down-right"),
)


def mentions_held_out(digits: np.ndarray, directions: np.ndarray) -> bool:
    """True if a motion caption of these frames would pair a digit with its held-out direction
    (per-frame compass indices `directions` (t, k), as `motion_caption` reads them)."""
    held = set(HELD_OUT_PAIRS)
    directions = np.asarray(directions)
    return any((int(digit), COMPASS[int(d)]) in held
               for slot, digit in enumerate(np.asarray(digits))
               for d in np.unique(directions[:, slot]))


def held_out_prompts(num: int) -> list[str]:
    """`num` prompts of two digits, each moving in its held-out direction (45 at most)."""
    direction = dict(HELD_OUT_PAIRS)
    pairs = [(a, b) for a in range(10) for b in range(a + 1, 10)]
    if not isinstance(num, int) or not 1 <= num <= len(pairs):
        raise ValueError(f"num must be an int in [1, {len(pairs)}], got {num!r}")
    order = np.random.default_rng(15).permutation(len(pairs))[:num]  # fixed: the same prompts
    return [f"digit {a} moves {direction[a]} and digit {b} moves {direction[b]}"
            for a, b in (pairs[k] for k in order)]


def encode_prompt(prompt: str) -> torch.Tensor:
    """Caption word ids (26,) of a prompt, after checking it follows the caption grammar."""
    accepted = (f"a prompt reads 'digit D moves DIRECTION [then DIRECTION]... [and digit ...]' "
                f"(at most {MAX_DIGITS} digits, {MAX_SEGMENTS} directions each); accepted "
                f"words: {list(VOCAB[1:])}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty caption; {accepted}")
    unknown = sorted({word for word in prompt.split() if word not in VOCAB[1:]})
    if unknown:
        raise ValueError(f"prompt {prompt!r} uses word(s) {unknown} outside the caption "
                         f"vocabulary; {accepted}")
    try:
        clauses = parse_caption(prompt)
    except ValueError as err:
        raise ValueError(f"prompt {prompt!r} is outside the caption grammar ({err}); "
                         f"{accepted}") from err
    if len(clauses) > MAX_DIGITS or any(len(c.directions) > MAX_SEGMENTS for c in clauses):
        raise ValueError(f"prompt {prompt!r} is too long; {accepted}")
    return torch.tensor(_CAPTIONS.encode(prompt), dtype=torch.long)


def frame_prompt(prompt: str, order: str = "slots") -> str:
    """A frame caption typed by a person ("digit 3 up-left and digit 7 down-right"), checked
    against stage 0's grammar and its clauses put in `order` (reading: by quadrant, ties kept)."""
    accepted = (f"a frame prompt reads 'digit D QUADRANT [and digit D QUADRANT]...' (at most "
                f"{MAX_DIGITS} digits) with D in 0-9 and QUADRANT one of {list(_READING)}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty frame caption; {accepted}")
    if order not in CAPTION_ORDERS:
        raise ValueError(f"order must be one of {CAPTION_ORDERS}, got {order!r}")
    clauses = prompt.split(" and ")
    parsed = [clause.split() for clause in clauses]
    if len(clauses) > MAX_DIGITS or any(
            len(words) != 3 or words[0] != "digit" or words[1] not in DIGIT_WORDS
            or words[2] not in _READING for words in parsed):
        raise ValueError(f"prompt {prompt!r} is outside the frame grammar; {accepted}")
    if order == "reading":
        parsed.sort(key=lambda words: _READING.index(words[2]))  # stable: ties keep their order
    return " and ".join(" ".join(words) for words in parsed)


def digit_free(captions: torch.Tensor) -> torch.Tensor:
    """Caption word ids (..., 26) with every digit word replaced by the pad: "digit 3 moves left"
    → "digit _ moves left" (`CogVideoConfig.digit_dropout`)."""
    first = VOCAB.index(DIGIT_WORDS[0])
    is_digit = (captions >= first) & (captions < first + len(DIGIT_WORDS))
    return captions.masked_fill(is_digit, 0)  # 0: the pad


def check_stride(stride: int, stage: str) -> int:
    """The stride (frame-rate token) if the stage accepts it, else a clear ValueError."""
    accepted = STAGE_STRIDES[stage]
    if not isinstance(stride, int) or isinstance(stride, bool) or stride not in accepted:
        raise ValueError(
            f"frame rate (stride) {stride!r} is not one the {stage} stage was trained at; "
            f"accepted strides (source frames between frames): {list(accepted)}"
        )
    return stride


# --------------------------------------------------------------------------- masks
def spatial_mask(text_len: int, num_frames: int, frame_len: int, *, device=None) -> torch.Tensor:
    """CogView's view, per frame: text ↔ text; the rate token sees text and itself; a frame's
    tokens see the text and, causally, their own frame (never the rate token). Bool (N, N)."""
    rate = -2  # group ids: text -1, rate token -2, frame f → f
    group = torch.cat([torch.full((text_len,), -1), torch.tensor([rate]),
                       repeat(torch.arange(num_frames), "f -> (f n)", n=frame_len)]).to(device)
    same_group = group[:, None] == group[None, :]
    key_is_text = (group == -1)[None, :]
    return prefix_mask(text_len + 1, len(group), device=device) & (same_group | key_is_text)


def temporal_mask(
    text_len: int, frame_times: tuple[int, ...], frame_len: int, window: int, shift: int,
    *, device=None,
) -> torch.Tensor:
    """The new channel: the prefix (text + rate) is bidirectional; a video token sees the prefix
    and, causally in sequence order, the tokens of every frame whose *time* lies in its window.

    Windows tile time as in `minivideo.masks.local_window_mask`: frame time t is in window
    floor((t + shift) / window). Sequence order may differ from time order (stage 2 puts the
    neighbours first), so the window test uses times and the causal test uses positions.
    """
    times = torch.as_tensor(frame_times)
    num_times = int(times.max()) + 1
    # same_window[t, u]: times t and u share a window — a (time, 1, 1) grid of local windows
    same_window = local_window_mask((num_times, 1, 1), (window, 1, 1), (shift, 0, 0))
    frames = same_window[times][:, times]  # (f, g) by sequence order of the frames
    video = repeat(frames, "f g -> (f n) (g m)", n=frame_len, m=frame_len).to(device)
    prefix = text_len + 1
    mask = prefix_mask(prefix, prefix + len(video), device=device)  # causal after the prefix
    mask[prefix:, prefix:] &= video
    return mask


def cell_offsets(text_len: int, num_frames: int, frame_len: int, grid: int,
                 *, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index (N, N) into a (2·grid - 1)² table of the (row, column) offset of each key's cell
    from the cell its query predicts, and where that is defined (both are video code cells).

    Token j of a frame (0 = BOF) holds code j - 1 and predicts code j, so a query and the key
    holding "its" cell in the previous frame sit at offset (0, 0)."""
    within = torch.arange(frame_len, device=device).repeat(num_frames)
    none = torch.full((text_len + 1,), -1, device=device)
    predicts = torch.cat([none, torch.where(within < grid**2, within, -1)])
    holds = torch.cat([none, within - 1])  # BOF holds no cell (-1)
    rows = (holds // grid)[None, :] - (predicts // grid)[:, None] + grid - 1
    cols = (holds % grid)[None, :] - (predicts % grid)[:, None] + grid - 1
    defined = (predicts >= 0)[:, None] & (holds >= 0)[None, :]
    index = torch.where(defined, rows * (2 * grid - 1) + cols, 0)
    return index, defined


def compass_ids(config: CogViewConfig, device: torch.device | None = None) -> torch.Tensor:
    """Token ids of the eight compass words in a caption (COMPASS order): num_codes + word."""
    return config.num_codes + torch.tensor([VOCAB.index(w) for w in COMPASS], device=device)


# --------------------------------------------------------------------------- CogViewConfig
@dataclass
class CogViewConfig:
    """Sizes of CogView-mini, and the frame tokenizer whose codes it models."""

    num_codes: int
    grid: int = 8  # codes per side of a frame
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    tokenizer: str = "vqvae-frame"  # pretrained name, or UNTRAINED_TINY
    text_len: int = TEXT_LEN
    caption_order: str = "slots"  # the order of its captions' clauses (`frame_caption`)

    def __post_init__(self) -> None:
        if self.caption_order not in CAPTION_ORDERS:
            raise ValueError(f"caption_order must be one of {CAPTION_ORDERS}, got "
                             f"{self.caption_order!r}")

    @property
    def boi(self) -> int:
        """Id of BOI/BOF, the token before every frame's codes."""
        return self.num_codes + len(VOCAB)

    @property
    def vocab_size(self) -> int:
        """Input vocabulary: codes, caption words, BOI."""
        return self.boi + 1

    @property
    def frame_len(self) -> int:
        """Tokens per frame: BOF and the grid² codes."""
        return 1 + self.grid**2

    @property
    def block_size(self) -> int:
        """Sequence length: caption, BOI, codes."""
        return self.text_len + self.frame_len

    @classmethod
    def preset(cls, name: str, num_codes: int, tokenizer: str) -> CogViewConfig:
        """tiny (tests), small (CPU, shipped), full (GPU)."""
        sizes = {"tiny": dict(n_layer=2, n_head=2, n_embd=32),
                 "small": dict(n_layer=4, n_head=4, n_embd=96),
                 # full (GPU): 8 × 192, exported as float16 (--export-half), keeps a stage
                 # (frozen base + temporal channel) under 10 MB
                 "full": dict(n_layer=8, n_head=6, n_embd=192)}
        if name not in sizes:
            raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
        return cls(num_codes=num_codes, tokenizer=tokenizer, **sizes[name])


# --------------------------------------------------------------------------- CogVideoConfig
@dataclass
class CogVideoConfig:
    """A CogVideo stage: the frozen CogView it grows from, its frames and temporal windows."""

    cogview: dict  # the frozen base's CogViewConfig, as a dict
    stage: str = "keyframes"  # "keyframes" (text → frames) or "interp" (neighbours → middle)
    window: int = 2  # temporal window, in frames; shifted by window // 2 on odd layers
    # A learned bias per head on the temporal logits, by the (row, column) offset of a key's
    # cell from the cell the query predicts: "the same place in the last frame" is then one
    # parameter to learn, not a pattern the copied spatial queries must discover.
    relative_bias: bool = False
    # α = gate_scale · g: Adam moves g by about lr per step, so the gate opens gate_scale times
    # faster; while α ≈ 0 the temporal channel gets almost no gradient.
    gate_scale: float = 1.0
    motion: str = "any"  # the training clips' motion, one of MOTIONS (see `clip_config`)
    compass_step_px: float = COMPASS_STEP_PX  # with motion="compass": px per frame per axis
    digits: int = 2  # digits per training clip: 2, or 1 for a layer stage (see LAYERS)
    # A learned correction to each caption word's frozen embedding (CogVideo.word_emb): the
    # video captions' motion words are words CogView never saw.
    word_embeddings: bool = False
    # A learned offset bias per compass word the caption names and frame rate, added to the
    # relative bias (CogVideo.motion_bias): the caption says where in the last frame to look.
    caption_offsets: bool = False
    # Offset biases = bias_scale · their parameters. To copy a moved digit the bias must outvote
    # the content logits (several units), and Adam moves a parameter ~lr per step.
    bias_scale: float = 1.0
    # A copy pointer over the previous key frame's codes beside the head (`pointer.py`):
    # "none", "caption" (the caption's words bias where it points), "timed" (and each word's
    # bias depends on its place in the path and on the key frame drawn) or "bound" (timed, and
    # each clause's tables apply to the cells its digit drew).
    pointer: str = "none"
    # The share of training captions whose digit words become pads ("digit 3 moves left" →
    # "digit _ moves left"): the stage then also learns what a direction says about motion with
    # no digit named, and move search scores later key frames under such captions (the first
    # key frame, the digit's shape, is drawn under the whole caption). A direction so learned
    # is one for every digit: what held-out (digit, direction) prompts need (issue 15).
    digit_dropout: float = 0.0
    base_name: str = "cogview"  # where the frozen channel came from (pretrained name)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive int, got {self.window!r}")
        clip_config(self.motion, CLIP_FRAMES, self.compass_step_px, self.digits)  # fails if bad
        if self.pointer not in POINTERS:
            raise ValueError(f"pointer must be one of {POINTERS}, got {self.pointer!r}")
        if self.pointer != "none" and self.stage != "keyframes":
            raise ValueError("pointer copies from the previous key frame: it needs "
                             f"stage='keyframes', got {self.stage!r}")
        if self.caption_offsets and not self.relative_bias:
            raise ValueError("caption_offsets needs relative_bias=True (it adds to that bias)")
        if not isinstance(self.digit_dropout, (int, float)) or not 0 <= self.digit_dropout <= 1:
            raise ValueError(f"digit_dropout must be a probability in [0, 1], got "
                             f"{self.digit_dropout!r}")
        for name in ("gate_scale", "bias_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")

    @property
    def clips(self) -> MovingMNISTConfig:
        """The generator of the stage's training (and evaluation) clips."""
        return clip_config(self.motion, CLIP_FRAMES, self.compass_step_px, self.digits)

    @property
    def base(self) -> CogViewConfig:
        """The frozen model's config."""
        return CogViewConfig(**self.cogview)

    @property
    def frame_times(self) -> tuple[int, ...]:
        """Time of each frame in sequence order: key frames in order; (left, right, middle)."""
        return tuple(range(NUM_KEYFRAMES)) if self.stage == "keyframes" else (0, 2, 1)

    @property
    def vocab_size(self) -> int:
        """CogView's vocabulary plus one frame-rate token per stride."""
        return self.base.vocab_size + len(FRAME_STRIDES)

    @property
    def block_size(self) -> int:
        """Caption, frame-rate token, frames."""
        return self.base.text_len + 1 + len(self.frame_times) * self.base.frame_len

    def rate_token(self, stride: int) -> int:
        """Id of the frame-rate token of a stride this stage accepts."""
        return self.base.vocab_size + FRAME_STRIDES.index(check_stride(stride, self.stage))


# --------------------------------------------------------------------------- sequences
def text_tokens(captions: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Model ids (b, 26) of caption word ids (b, 26) (`CaptionTokenizer` ids)."""
    if not isinstance(captions, torch.Tensor) or captions.dim() != 2 or \
            captions.shape[1] != TEXT_LEN or captions.is_floating_point():
        got = tuple(captions.shape) if isinstance(captions, torch.Tensor) else type(captions)
        raise ValueError(f"captions must be integer word ids of shape (b, {TEXT_LEN}) "
                         f"(CaptionTokenizer.encode_batch), got {got}")
    if int(captions.min()) < 0 or int(captions.max()) >= len(VOCAB):
        raise ValueError(f"caption word ids must lie in [0, {len(VOCAB)})")
    return captions.long() + num_codes


def frame_tokens(codes: torch.Tensor, boi: int) -> torch.Tensor:
    """Codes (b, f, h, w) → (b, f·(1 + h·w)): BOF then the codes in raster order, per frame."""
    flat = rearrange(codes.long(), "b f h w -> b f (h w)")
    bof = torch.full((*flat.shape[:2], 1), boi, dtype=torch.long, device=codes.device)
    return rearrange(torch.cat([bof, flat], dim=-1), "b f n -> b (f n)")


def cogview_sequence(captions: torch.Tensor, codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Stage 0 sequences (b, 26 + 1 + h·w) from caption ids (b, 26) and codes (b, h, w)."""
    boi = num_codes + len(VOCAB)
    return torch.cat([text_tokens(captions, num_codes), frame_tokens(codes[:, None], boi)], 1)


def video_sequence(config: CogVideoConfig, captions: torch.Tensor, stride: int,
                   codes: torch.Tensor) -> torch.Tensor:
    """A stage's sequence: caption, frame-rate token, frames (b, f, h, w) in sequence order."""
    base = config.base
    rate = torch.full((len(captions), 1), config.rate_token(stride), dtype=torch.long,
                      device=captions.device)
    return torch.cat([text_tokens(captions, base.num_codes), rate,
                      frame_tokens(codes, base.boi).to(captions.device)], dim=1)


def training_pair(sequence: torch.Tensor, scored_from: int, num_codes: int) -> dict:
    """Inputs and next-token targets of a sequence; only codes at positions ≥ scored_from count."""
    target = sequence[..., 1:].clone()
    position = torch.arange(1, sequence.shape[-1])
    target[..., position < scored_from] = -100
    target[target >= num_codes] = -100  # text, BOF and rate tokens are given, never predicted
    return {"input": sequence[..., :-1], "target": target}


def scored_from(config: CogViewConfig | CogVideoConfig) -> int:
    """First scored position: after the caption (and BOI or the rate token); interpolation
    scores only the middle frame, after the two given neighbours."""
    if isinstance(config, CogViewConfig):
        return config.text_len + 1
    base = config.base
    return base.text_len + 1 + (2 * base.frame_len if config.stage == "interp" else 0)


# --------------------------------------------------------------------------- training windows
def draw_window(config: CogVideoConfig, num_frames: int, rng: np.random.Generator,
                stride: int | None = None) -> tuple[int, int]:
    """(stride, first frame) of a training window of a stage in a clip of num_frames frames:
    key frames at stride 4, 2 or 1 (weights KEYFRAME_STRIDE_WEIGHTS), middles at 2 or 1."""
    if stride is not None:
        stride = check_stride(stride, config.stage)
    elif config.stage == "keyframes":
        strides = list(KEYFRAME_STRIDE_WEIGHTS)
        stride = strides[rng.choice(len(strides), p=list(KEYFRAME_STRIDE_WEIGHTS.values()))]
    else:
        stride = int(rng.choice(STAGE_STRIDES["interp"]))
    span = max(config.frame_times) * stride  # source frames from first to last
    return stride, int(rng.integers(num_frames - span))


def window_frames(config: CogVideoConfig, stride: int, first: int) -> list[int]:
    """The source frames of a window, in sequence order."""
    return [first + t * stride for t in config.frame_times]


def window_caption(config: CogVideoConfig, digits: np.ndarray, directions: np.ndarray,
                   stride: int, first: int) -> str:
    """The caption a window trains under; directions (t, k) are the clip's, per frame."""
    if config.stage == "keyframes":
        # the caption of exactly the motion shown between the first and the last frame
        last = first + max(config.frame_times) * stride
        return motion_caption(digits, directions[first:last])
    # stage 2 runs under the whole clip's prompt, so it trains under it too
    return motion_caption(digits, directions[:-1])

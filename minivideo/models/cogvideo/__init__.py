"""CogVideo (Hong et al., 2022) at small scale: text-to-video on a frozen text-to-image model.

CogVideo's recipe, each idea built for real on captioned Moving MNIST:

1. **Reuse a text-to-image model.** Stage 0, "CogView-mini", is a transformer over
   ``[caption | BOI | 8×8 frame codes]`` trained on single frames and per-frame captions. It
   learns what digits look like and where the text puts them; video data then only has to
   teach motion. Moving MNIST captions describe motion, not positions, so the frames get their
   own captions (`frame_caption`): each digit and the quadrant it sits in, with the compass
   words of the caption vocabulary, e.g. ``"digit 3 up-left and digit 7 down-right"`` (the 3 is
   in the upper-left quadrant). Same 23-word vocabulary, same tokenizer.
2. **The sequence layout.** ``[caption (26) | frame-rate token | BOF, 64 codes | BOF, 64 codes
   | ...]``: the caption (padded) and the frame-rate token attend to each other
   bidirectionally, the video tokens causally (`minivideo.masks.prefix_mask`). BOF ("begin of
   frame") is CogView's BOI token, so each frame is laid out exactly as CogView saw images.
3. **Dual-channel attention.** Every layer keeps CogView's attention, frozen, as the *spatial*
   channel (a frame's tokens see the caption and their own frame, as in CogView), and adds a
   new *temporal* channel (tokens see the frames inside a local window in time, causally). The
   temporal windows are shifted by half a window on every other layer, as Swin does in space,
   so information crosses window borders. The two are mixed by a learned per-channel gate α:
   ``x + spatial + α ⊙ (temporal − spatial)``, with α = 0 at the start, so the new model
   computes exactly what CogView computed for each frame before any training (tested).
4. **Multi-frame-rate hierarchical generation.** Stage 1 (``keyframes``) generates 5 frames at a
   low frame rate (every 4th frame of a 17-frame clip) from the text. Stage 2 (``interp``)
   fills the frame between two neighbours, seeing both (bidirectional in time: the neighbours
   come first in the sequence, the new frame last); applied to every pair it doubles the frame
   rate (5 → 9 → 17 frames). The frame-rate token tells each stage which rate it is at
   (the stride between frames: 4, 2 or 1 source frames).
5. **Classifier-free guidance on the text.** Training drops the caption (all pads) with
   probability `CAPTION_DROPOUT`; sampling mixes ``uncond + w · (cond − uncond)``.

Modules, lowest layer first (each imports only the ones before it):

    layout       constants, captions, masks, the configs (every id and size), sequences, windows
    model        CogView, TemporalChannel, CogVideo, sequence_loss
    data         encode_clips and the datasets of encoded clips
    generation   sampling (guidance, key frames, interpolation), tokenizers, the sample command
    search       key frames by move search (each digit moved whole, scored by the stage)
    layers       text → video one clause a layer (stages of one digit), composed in pixels
    recipe       the train targets of the stages, on fresh clips (not imported here)

Every public name is re-exported here: ``from minivideo.models.cogvideo import CogVideo`` is the
path to use, and the one checkpoints name the model classes by.

Token ids (one vocabulary for every model, K = the tokenizer's codebook size)::

    [0, K)            frame codes                  the only tokens a model ever predicts
    [K, K + 23)       caption words (pad = K)      minivideo.data.captions.VOCAB
    K + 23            BOI / BOF                    "a frame starts here"
    K + 24 + j        frame-rate token of FRAME_STRIDES[j]   (CogVideo only)

    python -m minivideo train cogview --config small --out checkpoints/cogview.pt
    python -m minivideo train cogvideo-keyframes --config small \\
        --out checkpoints/cogvideo-keyframes.pt
    python -m minivideo train cogvideo-interp --config small --out checkpoints/cogvideo-interp.pt
    python -m minivideo train cogvideo-layer-keyframes --config small --steps 2343 --threads 1 \\
        --bf16 --out runs/cogvideo-layer-keyframes.pt    # and cogvideo-layer-interp (2719 steps)
    python -m minivideo sample cogvideo --prompt "digit 3 moves left and digit 7 moves down" \\
        --num 4 --out t2v.gif    # the shipped layer stages, guidance 2, move search
"""

from minivideo.models.cogvideo.data import (
    EncodedClips,
    FrameCaptionDataset,
    VideoDataset,
    encode_clips,
)
from minivideo.models.cogvideo.data import _Draws as _Draws
from minivideo.models.cogvideo.generation import (
    check_guidance,
    check_stage,
    fill_middle,
    interpolate,
    interpolate_once,
    load_tokenizer,
    sample_images,
    sample_keyframes,
    text_to_video,
    tokenizer_of,
)
from minivideo.models.cogvideo.layers import (
    COGVIEW_APART,
    COGVIEW_BEST_OF,
    COGVIEW_GUIDANCE,
    COGVIEW_LAYERED,
    LAYER_GUIDANCE,
    LAYER_MIDDLES,
    LAYER_MOVE_TEMPERATURE,
    LAYER_RERANK,
    ink_overlap,
    layered_images,
    layered_text_to_video,
    prompt_layers,
)
from minivideo.models.cogvideo.layout import (
    CAPTION_DROPOUT,
    CLIP_FRAMES,
    COMPASS_STEP_PX,
    FRAME_STRIDES,
    HELD_OUT_PAIRS,
    KEYFRAME_STRIDE,
    KEYFRAME_STRIDE_WEIGHTS,
    LAYERS,
    MOTIONS,
    NUM_KEYFRAMES,
    PRESETS,
    STAGE_STRIDES,
    STAGES,
    TEXT_LEN,
    UNTRAINED_TINY,
    CogVideoConfig,
    CogViewConfig,
    cell_offsets,
    check_stride,
    clip_config,
    cogview_sequence,
    draw_window,
    encode_prompt,
    frame_caption,
    frame_prompt,
    frame_tokens,
    held_out_prompts,
    mentions_held_out,
    motion_caption,
    quadrant,
    scored_from,
    spatial_mask,
    temporal_mask,
    text_tokens,
    training_pair,
    video_sequence,
    window_caption,
    window_frames,
)
from minivideo.models.cogvideo.model import (
    CogVideo,
    CogView,
    DualCache,
    TemporalChannel,
    sequence_loss,
)

__all__ = [
    "HELD_OUT_PAIRS", "held_out_prompts", "mentions_held_out",
    "CAPTION_DROPOUT", "cell_offsets", "check_stride", "CLIP_FRAMES", "clip_config",
    "COGVIEW_APART", "COGVIEW_BEST_OF", "COGVIEW_GUIDANCE", "COGVIEW_LAYERED",
    "COMPASS_STEP_PX", "MOTIONS",
    "CogVideo", "CogVideoConfig", "CogView",
    "cogview_sequence", "CogViewConfig", "draw_window", "DualCache", "encode_clips",
    "encode_prompt", "EncodedClips", "fill_middle", "frame_caption", "frame_prompt",
    "FRAME_STRIDES", "frame_tokens", "FrameCaptionDataset", "interpolate", "interpolate_once",
    "KEYFRAME_STRIDE", "KEYFRAME_STRIDE_WEIGHTS", "LAYER_GUIDANCE", "LAYER_MIDDLES",
    "LAYER_MOVE_TEMPERATURE", "LAYER_RERANK",
    "LAYERS",
    "ink_overlap", "layered_images", "layered_text_to_video", "load_tokenizer", "prompt_layers",
    "motion_caption",
    "NUM_KEYFRAMES", "PRESETS", "quadrant", "sample_images", "sample_keyframes",
    "check_guidance", "check_stage", "scored_from", "sequence_loss", "spatial_mask",
    "STAGE_STRIDES", "STAGES",
    "temporal_mask", "TemporalChannel", "TEXT_LEN", "text_to_video", "text_tokens",
    "tokenizer_of", "training_pair", "UNTRAINED_TINY", "video_sequence", "VideoDataset",
    "window_caption", "window_frames",
]

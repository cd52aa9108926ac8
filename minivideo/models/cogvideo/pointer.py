"""A copy pointer for the key-frame stage: the pointer-generator idea (See et al., 2017) on codes.

A digit that moves a whole number of cells between key frames keeps its codes: the next key frame
is, cell for cell, the last one shifted. CogView's frozen head can only *redraw* a code from the
residual stream, and teaching the temporal channel a copy circuit (attention → value → head) costs
more CPU-minutes than a stage gets. The pointer gives the copy directly. The output is a mixture

    p(code) = (1 − g) · softmax(head) + g · Σ_m a_m · [code_m = code]

over the cells m of the previous frame (in sequence order). The pointer's attention a scores
    a query from the last hidden state · a key from the frozen embedding of the code at m
    + a learned bias per (row, column) offset and frame rate
    + a learned bias per offset for each compass word the caption names (× bias_scale),
so "digit 3 moves left" can say "copy from one cell to the right" before any content is learned.
`timed` orders those caption tables in time: a word's table depends on its slot in its digit's
path (first, after one "then", after two) and on the key frame being drawn, since at stride 4
the first word says how frame 0 → 1 moves and a "then" word only how later ones may.
The gate g = σ(w · h + b) starts near 0.05; a frame with no previous frame (the first) gets
g = 0 and the plain stage's distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minivideo.data.captions import MAX_SEGMENTS, VOCAB
from minivideo.data.moving_mnist import COMPASS
from minivideo.models.cogvideo.layout import FRAME_STRIDES, CogViewConfig, compass_ids


def path_slots(text: torch.Tensor, num_codes: int) -> torch.Tensor:
    """(b n) caption tokens → each token's slot in its clause's path: the number of "then"s since
    the clause's "moves" (0 for the first direction)."""
    word = text - num_codes
    then_seen = (word == VOCAB.index("then")).long().cumsum(1)
    # then_seen never decreases, so a running max of its value at each "moves" is the last one's
    at_moves = torch.where(word == VOCAB.index("moves"), then_seen, 0)
    return then_seen - at_moves.cummax(1).values


class CopyPointer(nn.Module):
    """The pointer's parameters, its per-caption offset tables and the output mixture."""

    def __init__(self, config: CogViewConfig, num_frames: int, timed: bool,
                 bias_scale: float = 1.0, dim: int = 32) -> None:
        super().__init__()
        self.base, self.bias_scale = config, bias_scale
        offsets = (2 * config.grid - 1) ** 2
        frames, slots = (num_frames, MAX_SEGMENTS) if timed else (1, 1)
        self.query = nn.Linear(config.n_embd, dim)
        self.key = nn.Linear(config.n_embd, dim)
        self.bias = nn.Parameter(torch.zeros(len(FRAME_STRIDES), offsets))
        self.motion = nn.Parameter(torch.zeros(len(FRAME_STRIDES), frames, slots, len(COMPASS),
                                               offsets))
        self.gate = nn.Linear(config.n_embd, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -3.0)  # g ≈ 0.05: the head keeps the say at first

    def tables(self, prefix: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Per example and frame, the offset bias (b, frames, offsets), from the prefix (b n):
        the frame rate's table plus the tables of the compass words the caption names."""
        config = self.base
        text = prefix[:, : config.text_len]
        _, _, slots, _, _ = self.motion.shape
        slot = F.one_hot(path_slots(text, config.num_codes).clamp(max=slots - 1), slots)
        is_word = text[..., None] == compass_ids(config, prefix.device)  # (b n 8)
        named = torch.einsum("bnd,bns->bsd", is_word.float(), slot.float()).clamp(max=1)
        rate = (prefix[:, config.text_len].long() - config.vocab_size).clamp(0)
        table = self.bias[rate][:, None] + torch.einsum("bsd,bfsdo->bfo", named,
                                                        self.motion[rate])
        return self.bias_scale * table.expand(-1, num_frames, -1)

    def forward(self, h: torch.Tensor, logits: torch.Tensor, tokens: torch.Tensor,
                table: torch.Tensor, index: torch.Tensor, previous: torch.Tensor,
                query_frame: torch.Tensor, key_embed: nn.Embedding) -> torch.Tensor:
        """Log-probabilities (b n V) of the mixture for the new queries.

        h (b n c): their last hidden states; logits (b n V): the head's; tokens (b m): every token
        so far; table (b frames offsets); index, previous (n m): each pair's offset index and
        whether the key is a cell of the query's previous frame; query_frame (n,)."""
        num_codes = self.base.num_codes
        codes = tokens.clamp(max=num_codes - 1).long()  # non-code keys are masked below
        keys = self.key(key_embed(codes))  # (b m d)
        scores = torch.einsum("bnd,bmd->bnm", self.query(h), keys) / keys.shape[-1] ** 0.5
        by_query = table[:, query_frame.clamp(min=0)]  # (b n offsets): each query's frame's
        scores = scores + by_query.gather(-1, index.expand(len(h), -1, -1))
        scores = scores.masked_fill(~previous, float("-inf"))
        weights = torch.softmax(scores.float(), -1).nan_to_num(0.0)  # all-masked rows: 0
        copy = torch.einsum("bnm,bmv->bnv", weights, F.one_hot(codes, logits.shape[-1]).float())
        g = torch.sigmoid(self.gate(h).float()).squeeze(-1) * previous.any(-1)  # (b n)
        # in probabilities, not log space: log(0) for an uncopyable code would give NaN grads
        mixed = (1 - g)[..., None] * logits.float().softmax(-1) + g[..., None] * copy
        return mixed.clamp_min(1e-30).log()

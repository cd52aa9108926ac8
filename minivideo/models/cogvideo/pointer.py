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
`bound` binds those tables to digits. A two-digit caption names two paths, and summing every
named word's table tells each digit to go both ways. So each clause keeps its own tables, and each
source cell m of the previous frame weighs them by which clause's digit it belongs to,

    π_m(k) = softmax over the caption's clauses k of  binder(h_m)[digit of clause k],

where h_m is the hidden state at m: a linear digit reader on the stream that drew that cell
(zero at first, so π is uniform). The cell's bias is Σ_k π_m(k) · table_k, plus the frame rate's.
The gate g = σ(w · h + b) starts near 0.05; a frame with no previous frame (the first) gets
g = 0 and the plain stage's distribution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minivideo.data.captions import DIGIT_WORDS, MAX_DIGITS, MAX_SEGMENTS, VOCAB
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


def clause_digits(text: torch.Tensor, num_codes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(b n) caption tokens → each token's clause (b n: 0, 1, 2 from its "digit" on; -1 before
    the first) and each clause's digit (b, MAX_DIGITS: -1 where the caption has no such clause)."""
    word = text - num_codes
    starts = word == VOCAB.index("digit")
    clause = starts.long().cumsum(1) - 1
    after_start = F.pad(starts, (1, 0))[:, :-1]  # the token after "digit" is its digit
    digit = word - VOCAB.index("0")
    is_digit = after_start & (digit >= 0) & (digit < len(DIGIT_WORDS))
    owner = F.one_hot(clause.clamp(0, MAX_DIGITS - 1), MAX_DIGITS) * is_digit[..., None]
    digits = torch.einsum("bnk,bn->bk", owner, digit.clamp(min=0))
    return clause, torch.where(owner.any(1), digits, -1)


class CopyPointer(nn.Module):
    """The pointer's parameters, its per-caption offset tables and the output mixture."""

    def __init__(self, config: CogViewConfig, num_frames: int, timed: bool,
                 bias_scale: float = 1.0, dim: int = 32, bound: bool = False) -> None:
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
        # bound: a digit reader per source cell, 0 at first (every clause weighs the same)
        self.binder = nn.Linear(config.n_embd, len(DIGIT_WORDS)) if bound else None
        if self.binder is not None:
            nn.init.zeros_(self.binder.weight)
            nn.init.zeros_(self.binder.bias)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -3.0)  # g ≈ 0.05: the head keeps the say at first

    def tables(self, prefix: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Per example and frame, the offset bias (b, frames, offsets), from the prefix (b n):
        the frame rate's table plus the tables of the compass words the caption names. Bound:
        (b, 1 + MAX_DIGITS, frames, offsets), the frame rate's table, then each clause's."""
        config = self.base
        text = prefix[:, : config.text_len]
        _, _, slots, _, _ = self.motion.shape
        slot = F.one_hot(path_slots(text, config.num_codes).clamp(max=slots - 1), slots)
        is_word = (text[..., None] == compass_ids(config, prefix.device)).float()  # (b n 8)
        rate = (prefix[:, config.text_len].long() - config.vocab_size).clamp(0)
        if self.binder is None:
            named = torch.einsum("bnd,bns->bsd", is_word, slot.float()).clamp(max=1)
            table = self.bias[rate][:, None] + torch.einsum("bsd,bfsdo->bfo", named,
                                                            self.motion[rate])
            return self.bias_scale * table.expand(-1, num_frames, -1)
        clause, _ = clause_digits(text, config.num_codes)
        owner = F.one_hot(clause.clamp(0, MAX_DIGITS - 1), MAX_DIGITS) * (clause >= 0)[..., None]
        named = torch.einsum("bnd,bns,bnk->bksd", is_word, slot.float(),
                             owner.float()).clamp(max=1)
        clauses = torch.einsum("bksd,bfsdo->bkfo", named, self.motion[rate])
        table = torch.cat([self.bias[rate][:, None, None].expand(-1, 1, clauses.shape[2], -1),
                           clauses], 1)
        return self.bias_scale * table.expand(-1, -1, num_frames, -1)

    def binding(self, hidden: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
        """Each cell's weights (b m 1 + MAX_DIGITS) on the bound tables: 1 for the frame rate's,
        then π_m(k) over the clauses, read from the hidden states (b m c) of the cells and the
        clauses' digits (b, MAX_DIGITS; -1 = no clause: weight 0)."""
        read = self.binder(hidden).float()  # (b m 10): which digit drew this cell
        logits = read.gather(-1, digits.clamp(min=0)[:, None].expand(-1, read.shape[1], -1))
        logits = logits.masked_fill((digits < 0)[:, None], float("-inf"))
        clauses = torch.softmax(logits, -1).nan_to_num(0.0)  # a caption-free side: no clause
        return torch.cat([torch.ones_like(clauses[..., :1]), clauses], -1)

    def forward(self, h: torch.Tensor, logits: torch.Tensor, tokens: torch.Tensor,
                table: torch.Tensor, index: torch.Tensor, previous: torch.Tensor,
                query_frame: torch.Tensor, key_embed: nn.Embedding,
                hidden: torch.Tensor | None = None,
                digits: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities (b n V) of the mixture for the new queries.

        h (b n c): their last hidden states; logits (b n V): the head's; tokens (b m): every token
        so far; table: `tables`'; index, previous (n m): each pair's offset index and whether the
        key is a cell of the query's previous frame; query_frame (n,). Bound: hidden (b m c),
        every token's hidden state so far, and digits (b, MAX_DIGITS), the clauses' digits."""
        num_codes = self.base.num_codes
        codes = tokens.clamp(max=num_codes - 1).long()  # non-code keys are masked below
        keys = self.key(key_embed(codes))  # (b m d)
        scores = torch.einsum("bnd,bmd->bnm", self.query(h), keys) / keys.shape[-1] ** 0.5
        scores = scores + self._pair_bias(table, index, query_frame, hidden, digits)
        scores = scores.masked_fill(~previous, float("-inf"))
        weights = torch.softmax(scores.float(), -1).nan_to_num(0.0)  # all-masked rows: 0
        copy = torch.einsum("bnm,bmv->bnv", weights, F.one_hot(codes, logits.shape[-1]).float())
        g = torch.sigmoid(self.gate(h).float()).squeeze(-1) * previous.any(-1)  # (b n)
        # in probabilities, not log space: log(0) for an uncopyable code would give NaN grads
        mixed = (1 - g)[..., None] * logits.float().softmax(-1) + g[..., None] * copy
        return mixed.clamp_min(1e-30).log()

    def _pair_bias(self, table: torch.Tensor, index: torch.Tensor, query_frame: torch.Tensor,
                   hidden: torch.Tensor | None, digits: torch.Tensor | None) -> torch.Tensor:
        """The offset bias of every (query, key) pair (b n m): the query's frame's table at the
        pair's offset; bound, the tables weighed by the key cell's clause."""
        if self.binder is None:
            by_query = table[:, query_frame.clamp(min=0)]  # (b n offsets): each query's frame's
            return by_query.gather(-1, index.expand(len(table), -1, -1))
        by_query = table[:, :, query_frame.clamp(min=0)]  # (b 1+k n offsets)
        pairs = by_query.gather(-1, index.expand(*by_query.shape[:2], -1, -1))  # (b 1+k n m)
        return torch.einsum("bknm,bmk->bnm", pairs, self.binding(hidden, digits))

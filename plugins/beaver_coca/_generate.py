"""CoCa's caption decoding, batched, in plain torch: open_clip's beam search, top-k and top-p.

open_clip's ``CoCa.generate`` builds on transformers' ``BeamSearchScorer`` and logits
processors; transformers 4.56+ no longer exports the scorer and 5.x removed it, and then
open_clip 3.x turns every kind of generation off. These functions give the same tokens as
``CoCa.generate`` with its defaults (``min_seq_len=5``, ``repetition_penalty=1.0``,
``temperature=1.0``, no ``fixed_output_length``) and need no transformers at all:

* :func:`beam_search` — open_clip asks for 6 beams in 3 groups with no diversity penalty,
  so the 3 groups are identical 2-beam searches; 2 beams give the same caption for a third
  of the work. Scores add the decoder's raw logits (not log-probabilities), hypotheses are
  ranked by score / length, and a search ends as transformers' ``early_stopping=False``
  decides; all as open_clip does.
* :func:`sample` — ``top_k`` / ``top_p`` warping, then one draw per image; the last step
  writes the end token. ``top_k=1`` is greedy and draws nothing.

Every step is one decoder call for the whole batch (all beams of all images); sequences
that have ended are padded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

START = 49406
"""``<start_of_text>`` in open_clip's CLIP tokenizer (what ``CoCa.generate`` assumes)."""
END = 49407
"""``<end_of_text>``."""
PAD = 0
"""What ``CoCa.generate`` appends after a sequence's end (CoCa's ``pad_id``)."""
MIN_SEQ_LEN = 5
"""``CoCa.generate``'s default: no end token before the sequence holds this many tokens."""
BEAMS = 2
"""Beams per image: open_clip's 6 beams in 3 groups, without the 2 duplicate groups."""

NextLogits = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""``(image_embs, tokens) -> logits``: the decoder's scores for each sequence's next token.

``image_embs`` has one row per sequence (the image's token embeddings), ``tokens`` the
sequences so far (``[rows, length]``); the result is ``[rows, vocab]``.
"""


def beam_search(next_logits: NextLogits, image_embs: torch.Tensor, seq_len: int) -> list[list[int]]:
    """The best beam of each image: its tokens, from the start token, without the end token."""
    import torch

    batch = image_embs.shape[0]
    device = image_embs.device
    embs = image_embs.repeat_interleave(BEAMS, dim=0)
    tokens = torch.full((batch * BEAMS, 1), START, dtype=torch.long, device=device)
    # Only each image's first beam is live at the start, so the beams do not all pick the
    # same first token.
    scores = torch.full((batch, BEAMS), -1e9, dtype=torch.float32, device=device)
    scores[:, 0] = 0
    scores = scores.view(-1)
    found = [_Hypotheses(BEAMS) for _ in range(batch)]
    done = [False] * batch
    while True:
        logits = next_logits(embs, tokens).float()
        _no_end_before_min_length(logits, tokens.shape[1])
        vocab = logits.shape[-1]
        candidates = (logits + scores[:, None]).view(batch, BEAMS * vocab)
        top_scores, top_ids = candidates.topk(2 * BEAMS, dim=1, largest=True, sorted=True)
        length = tokens.shape[1] + 1
        rows, words, kept = _advance(
            found, done, top_scores.tolist(), top_ids.tolist(), vocab, tokens, length
        )
        index = torch.tensor(rows, dtype=torch.long, device=device)
        tokens = torch.cat(
            [tokens[index], torch.tensor(words, dtype=torch.long, device=device)[:, None]], dim=1
        )
        scores = torch.tensor(kept, dtype=torch.float32, device=device)
        if all(done) or tokens.shape[1] >= seq_len:
            break
    length = tokens.shape[1]
    rows_left = tokens.tolist()
    scores_left = scores.tolist()
    for image, hypotheses in enumerate(found):
        if done[image]:
            continue
        for row in range(image * BEAMS, (image + 1) * BEAMS):
            hypotheses.add(rows_left[row], scores_left[row], length)
    return [hypotheses.best() for hypotheses in found]


def _advance(
    found: list[_Hypotheses],
    done: list[bool],
    top_scores: list[list[float]],
    top_ids: list[list[int]],
    vocab: int,
    tokens: torch.Tensor,
    length: int,
) -> tuple[list[int], list[int], list[float]]:
    """One beam-search step's bookkeeping: rows to continue, their next words and scores.

    Candidates come best first. An end token among the first ``BEAMS`` closes a hypothesis;
    the first ``BEAMS`` other candidates continue. As transformers' scorer.
    """
    rows: list[int] = []
    words: list[int] = []
    kept: list[float] = []
    for image, (scores, ids) in enumerate(zip(top_scores, top_ids, strict=True)):
        first = image * BEAMS
        if done[image]:
            rows.extend(range(first, first + BEAMS))
            words.extend([PAD] * BEAMS)
            kept.extend([0.0] * BEAMS)
            continue
        taken = 0
        for rank, (score, flat) in enumerate(zip(scores, ids, strict=True)):
            row, word = first + flat // vocab, flat % vocab
            if word == END:
                if rank < BEAMS:
                    found[image].add(tokens[row].tolist(), score, length)
            else:
                rows.append(row)
                words.append(word)
                kept.append(score)
                taken += 1
            if taken == BEAMS:
                break
        done[image] = found[image].is_done(max(scores), length)
    return rows, words, kept


class _Hypotheses:
    """An image's finished beams, the ``size`` best by score / length (transformers' rules)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.beams: list[tuple[float, list[int]]] = []
        self.worst = 1e9

    def add(self, tokens: list[int], total: float, length: int) -> None:
        score = total / length
        if len(self.beams) < self.size or score > self.worst:
            self.beams.append((score, tokens))
            if len(self.beams) > self.size:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_total: float, length: int) -> bool:
        """Whether no live beam can still beat the worst finished one (a heuristic)."""
        return len(self.beams) >= self.size and self.worst >= best_total / length

    def best(self) -> list[int]:
        best = self.beams[0]
        for beam in self.beams[1:]:
            if beam[0] >= best[0]:  # the later of equals, as transformers' sort-and-pop
                best = beam
        return best[1]


def sample(
    next_logits: NextLogits,
    image_embs: torch.Tensor,
    seq_len: int,
    *,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Each image's tokens from the start token to (without) the end token.

    With ``top_k`` the draw is among the k best tokens, with ``top_p`` among the fewest
    best tokens whose probabilities add up to ``top_p``; ``top_k=1`` is greedy.
    """
    import torch

    batch = image_embs.shape[0]
    device = image_embs.device
    tokens = torch.full((batch, 1), START, dtype=torch.long, device=device)
    ended = torch.zeros(batch, dtype=torch.bool, device=device)
    while True:
        if tokens.shape[1] + 1 == seq_len:
            words = torch.full((batch,), END, dtype=torch.long, device=device)
        else:
            logits = next_logits(image_embs, tokens).float()
            _no_end_before_min_length(logits, tokens.shape[1])
            words = _draw(logits, top_k, top_p, generator)
        words = torch.where(ended, torch.full_like(words, PAD), words)
        tokens = torch.cat([tokens, words[:, None]], dim=1)
        ended |= words == END
        if bool(ended.all()) or tokens.shape[1] >= seq_len:
            break
    return [_until_end(row) for row in tokens.tolist()]


def _draw(
    logits: torch.Tensor,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    import torch

    if top_k == 1:
        return logits.argmax(dim=-1)
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        ascending, order = logits.sort(dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - top_p
        drop[:, -1] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]


def _no_end_before_min_length(logits: torch.Tensor, length: int) -> None:
    if length < MIN_SEQ_LEN:
        logits[:, END] = float("-inf")


def _until_end(row: list[int]) -> list[int]:
    return row[: row.index(END)] if END in row else row

"""Text conditioning: a byte-level tokenizer and a small trainable transformer encoder.

Prompts are instructions that name colors and classes ("paint the chair rgb(255, 0, 0)"), so
the encoder must see digits and rare words exactly: a byte-level tokenizer (ByT5-style, no
vocabulary file to ship or version) does that with no out-of-vocabulary tokens. It costs
longer sequences than BPE, which a small encoder and cross-attention absorb easily at prompt
lengths (a few hundred bytes).

`PretrainedTextEncoder` is the option for a frozen pretrained encoder (e.g. a T5 or CLIP text
tower) read from a local directory with `transformers`; only its output projection trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
BYTE_VOCAB = 256 + N_SPECIAL


class ByteTokenizer:
    """UTF-8 bytes -> ids (byte + 3), framed by BOS/EOS, padded with PAD, truncated to `max_len`."""

    def __init__(self, max_len: int) -> None:
        if max_len < 3:
            raise ValueError(f"max_len must be >= 3 (BOS, one byte, EOS), got {max_len}")
        self.max_len = max_len

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ids (B, L) int64 and a mask (B, L) bool, True on real tokens.

        L is the longest prompt's length rounded up to a multiple of 16 (at most `max_len`):
        short prompts do not pay for `max_len` tokens, and few distinct shapes keep
        `torch.compile` from recompiling often. Padded keys are masked, so L does not change
        the encoding beyond float rounding.
        """
        rows = [[BOS] + [b + N_SPECIAL for b in text.encode("utf-8")[: self.max_len - 2]] + [EOS] for text in prompts]
        length = min(self.max_len, -(-max(map(len, rows), default=2) // 16) * 16)
        ids = torch.full((len(prompts), length), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids, ids != PAD


@dataclass(frozen=True)
class TextEncoderConfig:
    dim: int = 128
    depth: int = 2
    heads: int = 4
    max_len: int = 256  # bytes per prompt (longer prompts are truncated)
    pretrained: str | None = None  # local directory of a transformers text model: frozen encoder

    def build(self, out_dim: int) -> "TextEncoder | PretrainedTextEncoder":
        if self.pretrained:
            return PretrainedTextEncoder(self.pretrained, out_dim, self.max_len)
        return TextEncoder(self, out_dim)


class TextEncoder(nn.Module):
    """Byte embeddings + learned positions + a pre-norm transformer encoder -> (B, L, out_dim)."""

    def __init__(self, cfg: TextEncoderConfig, out_dim: int) -> None:
        super().__init__()
        self.tokenizer = ByteTokenizer(cfg.max_len)
        self.embed = nn.Embedding(BYTE_VOCAB, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_len, cfg.dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, 4 * cfg.dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        # enable_nested_tensor would change numerics between padded and unpadded batches
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.proj = nn.Linear(cfg.dim, out_dim)

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts -> (tokens (B, L, out_dim), mask (B, L) bool)."""
        ids, mask = self.tokenizer(prompts)
        ids, mask = ids.to(self.pos.device), mask.to(self.pos.device)
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        x = self.blocks(x, src_key_padding_mask=~mask)
        return self.proj(self.norm(x)), mask


class PretrainedTextEncoder(nn.Module):
    """A frozen `transformers` text model from a local directory plus a trainable projection.

    The directory must hold a tokenizer and a model that `AutoTokenizer` / `AutoModel` read with
    `local_files_only=True` (nothing is downloaded). Encoder-decoder models (T5) use their encoder.
    The frozen weights are kept out of `state_dict` (checkpoints hold only the projection), so the
    same directory must be given when a checkpoint is loaded.
    """

    def __init__(self, path: str, out_dim: int, max_len: int) -> None:
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ValueError("a pretrained text encoder needs `transformers` (pip install transformers)") from err
        try:
            self.hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot load a pretrained text encoder from {path!r}: {err}") from err
        model = model.get_encoder() if hasattr(model, "get_encoder") and model.config.is_encoder_decoder else model
        model.requires_grad_(False).eval()
        # a plain attribute inside a list: not registered, so no grads, no state_dict entries, no DDP sync
        self._frozen = [model]
        self.max_len = max_len
        self.proj = nn.Linear(model.config.hidden_size, out_dim)

    def train(self, mode: bool = True) -> "PretrainedTextEncoder":
        super().train(mode)
        self._frozen[0].eval()  # frozen: never dropout
        return self

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.proj.weight.device
        model = self._frozen[0]
        if next(model.parameters()).device != device:
            model.to(device)
        enc = self.hf_tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_len,
                                return_tensors="pt")
        mask = enc["attention_mask"].to(device).bool()
        with torch.no_grad():
            hidden = model(input_ids=enc["input_ids"].to(device), attention_mask=mask.long()).last_hidden_state
        return self.proj(hidden.float()), mask

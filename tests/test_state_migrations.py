"""The state DB's Alembic migrations, on SQLite and on PostgreSQL (`state_db`, see conftest): upgrade from
empty, downgrade to base, upgrade again, data carried across a migration, and the ORM models equal to the
migrated schema (what `alembic revision --autogenerate` would compare)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, LargeBinary, column, inspect, table, text

from core.db import alembic_config, downgrade, get_engine, session_scope, upgrade
from core.models import Base, Story, UTCDateTime, on_dialect
from core.settings import Settings

ALEMBIC_TABLE = "alembic_version"


@pytest.fixture
def empty(tmp_path: Path, state_db: str | None) -> Settings:
    """Settings on an empty state DB: nothing migrated yet."""
    database = {"database_url": state_db} if state_db else {}
    return Settings(var_dir=tmp_path / "var", feeds_file=tmp_path / "no-feeds.yaml", **database)


def _head(settings: Settings) -> str:
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


def _revision(settings: Settings) -> str | None:
    with get_engine(settings).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _tables(settings: Settings) -> set[str]:
    with get_engine(settings).connect() as connection:
        return set(inspect(connection).get_table_names()) - {ALEMBIC_TABLE}


def _differences(settings: Settings) -> list:
    with get_engine(settings).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "include_object": on_dialect(connection.dialect.name)})
        return compare_metadata(context, Base.metadata)


def test_upgrade_downgrade_upgrade(empty: Settings) -> None:
    assert _tables(empty) == set() and _revision(empty) is None

    upgrade(empty)
    assert _revision(empty) == _head(empty)
    assert _tables(empty) == set(Base.metadata.tables)
    upgrade(empty)  # idempotent
    assert _revision(empty) == _head(empty)

    downgrade(empty, "base")
    assert _revision(empty) is None
    assert _tables(empty) == set()

    upgrade(empty)
    assert _revision(empty) == _head(empty)
    assert _tables(empty) == set(Base.metadata.tables)
    assert _differences(empty) == []


def test_models_match_the_migrated_schema(settings: Settings) -> None:
    """After `upgrade head` (the `settings` fixture), autogenerate finds nothing to add, drop or alter."""
    differences = _differences(settings)
    assert differences == [], "models and migrations disagree; add a migration:\n" + "\n".join(
        map(repr, differences)
    )


def test_rows_survive_the_story_events_migration(empty: Settings) -> None:
    """0002 adds NOT NULL columns to `stories`: rows written at 0001 get their server defaults, and going
    back to 0001 keeps them."""
    upgrade(empty, "0001")
    at = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)
    stories_0001 = table(  # `stories` as 0001 made it, typed as the models bind them
        "stories", column("id"), column("topic"), column("headline"), column("first_seen", UTCDateTime),
        column("last_seen", UTCDateTime), column("article_count"), column("source_count"),
        column("sources", JSON), column("language_counts", JSON), column("terms", JSON),
        column("centroid", LargeBinary), column("created_at", UTCDateTime), column("updated_at", UTCDateTime),
    )
    with get_engine(empty).begin() as connection:
        connection.execute(stories_0001.insert().values(
            id="s1", topic="lithuania-brigade", headline="Brigade arrives", first_seen=at, last_seen=at,
            article_count=2, source_count=2, sources={"lrt.lt": 1, "dw.com": 1}, language_counts={"lt": 1, "de": 1},
            terms=["rūdninkai"], centroid=b"\x00\x00\x80\x3f", created_at=at, updated_at=at,
        ))

    upgrade(empty)
    with session_scope(empty) as session:
        story = session.get(Story, "s1")
        assert story is not None
        assert story.copy_sources == {} and story.syndicated_outlets == 0 and story.merged_into is None
        assert story.sources == {"lrt.lt": 1, "dw.com": 1} and story.terms == ["rūdninkai"]
        assert story.first_seen == at and story.first_seen.tzinfo is not None

    downgrade(empty, "0001")
    assert _revision(empty) == "0001"
    assert "story_events" not in _tables(empty)
    with get_engine(empty).connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("stories")}
        assert "copy_sources" not in columns and "merged_into" not in columns
        assert connection.execute(text("SELECT headline FROM stories WHERE id = 's1'")).scalar_one() == (
            "Brigade arrives"
        )

"""The fake Slack itself, through the real slack_sdk WebClient: threads, history paging, metadata, updates,
reactions, block validation and the injected faults (chaos, slow answers)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from fakeslack import BOT_USER, TOKEN, FakeSlack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

CHANNEL = "#flankwatch-alerts"
SECTION = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]


def _client(fake: FakeSlack, **kwargs) -> WebClient:
    client = WebClient(token=TOKEN, base_url=fake.url, retry_handlers=[], **kwargs)
    client.proxy = None
    return client


def _meta(alert_id: str) -> dict:
    return {"event_type": "flankwatch_alert", "event_payload": {"alert_id": alert_id}}


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(SlackApiError) as caught:
        call(*args, **kwargs)
    return caught.value.response["error"]


def test_channel_ids():
    fake = FakeSlack()
    cid = fake.channel_id(CHANNEL)
    assert re.fullmatch(r"C[0-9A-F]{8}", cid)
    assert fake.channel_id("flankwatch-alerts") == cid == FakeSlack().channel_id(CHANNEL)  # stable
    assert fake.channel_id("#other") != cid
    assert fake.channel_id("C0123") == "C0123" and fake.channel_id("G0AB") == "G0AB" and fake.channel_id(cid) == cid


def test_thread_post_and_replies(fake_slack):
    client = _client(fake_slack)
    parent = client.chat_postMessage(channel=CHANNEL, text="parent", blocks=SECTION, metadata=_meta("a1"))
    cid = fake_slack.channel_id(CHANNEL)
    assert parent["channel"] == cid
    assert client.chat_postMessage(channel="C0123", text="elsewhere")["channel"] == "C0123"
    one = client.chat_postMessage(channel=cid, text="one", thread_ts=parent["ts"], metadata=_meta("a2"))
    two = client.chat_postMessage(channel=CHANNEL, text="two", thread_ts=parent["ts"], reply_broadcast=True)
    assert parent["ts"] < one["ts"] < two["ts"]

    replies = client.conversations_replies(channel=cid, ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["parent", "one", "two"]
    assert {m["thread_ts"] for m in replies["messages"]} == {parent["ts"]}
    assert replies["messages"][0]["reply_count"] == 2 and replies["messages"][0]["latest_reply"] == two["ts"]
    assert replies["has_more"] is False
    assert all("metadata" not in m for m in replies["messages"])
    with_meta = client.conversations_replies(channel=cid, ts=one["ts"], include_all_metadata=True)  # a reply's ts
    assert [m.get("metadata", {}).get("event_payload") for m in with_meta["messages"]] == [
        {"alert_id": "a1"}, {"alert_id": "a2"}, None,
    ]  # fmt: skip

    assert [m["text"] for m in fake_slack.top_level(CHANNEL)] == ["parent"]
    assert [m["text"] for m in fake_slack.top_level()] == ["parent", "elsewhere"]
    stored = fake_slack.replies(CHANNEL, parent["ts"])
    assert [(m["text"], m["thread_ts"], m["reply_broadcast"]) for m in stored] == [
        ("one", parent["ts"], False), ("two", parent["ts"], True),
    ]  # fmt: skip
    assert fake_slack.message(cid, parent["ts"])["blocks"] == SECTION
    assert fake_slack.message(cid, "1.000001") is None
    assert fake_slack.alert_ids() == ["a1", "a2"]

    history = client.conversations_history(channel=cid)["messages"]  # the broadcast reply shows in the channel
    assert [(m["text"], m.get("subtype")) for m in history] == [("two", "thread_broadcast"), ("parent", None)]
    read = fake_slack.requests[-1]  # slack_sdk sends reads as form posts
    assert read.headers["content-type"] == "application/x-www-form-urlencoded" and read.body["channel"] == cid

    query = urllib.request.Request(  # and a GET with query arguments works as in Slack
        f"{fake_slack.url}conversations.replies?channel={cid}&ts={parent['ts']}&limit=2",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(query, timeout=5) as answer:
        got = json.load(answer)
    assert [m["text"] for m in got["messages"]] == ["parent", "one"] and got["has_more"] is True


def test_thread_not_found(fake_slack):
    client = _client(fake_slack)
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")
    reply = client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=parent["ts"])
    assert _error(client.chat_postMessage, channel=CHANNEL, text="x", thread_ts="1700000000.999999") == "thread_not_found"
    assert _error(client.chat_postMessage, channel=CHANNEL, text="x", thread_ts=reply["ts"]) == "thread_not_found"
    assert _error(client.chat_postMessage, channel="#other", text="x", thread_ts=parent["ts"]) == "thread_not_found"
    assert _error(client.conversations_replies, channel=FakeSlack.channel_id(CHANNEL), ts="1700000000.999999") == (
        "thread_not_found"
    )
    assert _error(client.conversations_history, channel=CHANNEL) == "channel_not_found"  # reads need the id
    assert len(fake_slack.messages) == 2 and len(fake_slack.top_level()) == 1


def test_history_paging_and_metadata(fake_slack):
    client = _client(fake_slack)
    posted = [client.chat_postMessage(channel=CHANNEL, text=f"m{i}", metadata=_meta(f"a{i}"))["ts"] for i in range(5)]
    client.chat_postMessage(channel="#other", text="not here")

    pages, cursor = [], None
    while True:
        page = client.conversations_history(channel=FakeSlack.channel_id(CHANNEL), limit=2, cursor=cursor)
        pages.append([m["ts"] for m in page["messages"]])
        assert all("metadata" not in m for m in page["messages"])
        if not page["has_more"]:
            assert not (page.get("response_metadata") or {}).get("next_cursor")
            break
        cursor = page["response_metadata"]["next_cursor"]
    assert pages == [posted[4:2:-1], posted[2:0:-1], posted[:1]]

    full = client.conversations_history(channel=fake_slack.channel_id(CHANNEL), include_all_metadata=True)
    assert full["has_more"] is False
    assert [m["metadata"]["event_payload"]["alert_id"] for m in full["messages"]] == ["a4", "a3", "a2", "a1", "a0"]
    assert full["messages"][0]["metadata"]["event_type"] == "flankwatch_alert"

    window = client.conversations_history(channel=FakeSlack.channel_id(CHANNEL), oldest=posted[1], latest=posted[3])["messages"]
    assert [m["ts"] for m in window] == [posted[2]]  # exclusive bounds, as in Slack
    window = client.conversations_history(channel=FakeSlack.channel_id(CHANNEL), oldest=posted[1], latest=posted[3], inclusive=True)
    assert [m["ts"] for m in window["messages"]] == posted[3:0:-1]
    assert _error(client.conversations_history, channel=FakeSlack.channel_id(CHANNEL), cursor="bogus") == "invalid_cursor"
    assert client.conversations_history(channel="C0NEW")["messages"] == []


def test_metadata_as_json_string_and_form_body(fake_slack):
    client = _client(fake_slack)
    response = client.api_call(
        "chat.postMessage", params={"channel": "C0", "text": "hi", "metadata": json.dumps(_meta("f1"))}
    )
    assert response["ok"] and fake_slack.alert_ids() == ["f1"]
    assert fake_slack.top_level("C0")[0]["metadata"] == _meta("f1")
    bad = client.api_call  # a metadata without event_payload is refused
    assert _error(bad, "chat.postMessage", json={"channel": "C0", "text": "x", "metadata": {"event_type": "e"}}) == (
        "invalid_metadata_schema"
    )


def test_chat_update(fake_slack):
    client = _client(fake_slack)
    posted = client.chat_postMessage(channel=CHANNEL, text="before", blocks=SECTION)
    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "after"}}]
    answer = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="after", blocks=new_blocks)
    assert answer["ts"] == posted["ts"] and answer["message"]["edited"]["user"] == BOT_USER

    stored = fake_slack.message(CHANNEL, posted["ts"])
    assert (stored["text"], stored["blocks"], stored["edited"]) == ("after", new_blocks, True)
    [update] = fake_slack.updates
    assert update["channel"] == fake_slack.channel_id(CHANNEL) and update["ts"] == posted["ts"]
    assert update["text"] == "after" and update["blocks"] == new_blocks
    assert len(fake_slack.messages) == 1  # an update is no new message

    client.chat_update(channel=FakeSlack.channel_id(CHANNEL), ts=posted["ts"], text="text only")  # blocks not sent are kept
    assert fake_slack.message(CHANNEL, posted["ts"])["blocks"] == new_blocks
    assert _error(client.chat_update, channel=FakeSlack.channel_id(CHANNEL), ts="1700000000.999999", text="x") == "message_not_found"
    too_long = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    assert _error(client.chat_update, channel=FakeSlack.channel_id(CHANNEL), ts=posted["ts"], text="x", blocks=too_long) == "invalid_blocks"
    assert len(fake_slack.updates) == 2


def test_reactions(fake_slack):
    client = _client(fake_slack)
    posted = client.chat_postMessage(channel=CHANNEL, text="react to me")
    cid, ts = posted["channel"], posted["ts"]
    bare = client.reactions_get(channel=cid, timestamp=ts)
    assert bare["type"] == "message" and bare["message"]["ts"] == ts and "reactions" not in bare["message"]

    fake_slack.react(cid, ts, "+1", count=3)
    fake_slack.react(CHANNEL, ts, "-1")
    assert client.reactions_add(channel=cid, timestamp=ts, name="+1")["ok"]
    assert _error(client.reactions_add, channel=cid, timestamp=ts, name="+1") == "already_reacted"
    assert _error(client.reactions_add, channel=cid, timestamp="1700000000.999999", name="x") == "message_not_found"

    reactions = client.reactions_get(channel=cid, timestamp=ts, full=True)["message"]["reactions"]
    assert [(r["name"], r["count"]) for r in reactions] == [("+1", 4), ("-1", 1)]
    assert len(set(reactions[0]["users"])) == 4 and BOT_USER in reactions[0]["users"]
    assert fake_slack.message(cid, ts)["reactions"] == {"+1": 4, "-1": 1}
    assert _error(client.reactions_get, channel=cid, timestamp="1700000000.999999") == "message_not_found"
    with pytest.raises(KeyError):
        fake_slack.react(cid, "1700000000.999999", "+1")


def test_blocks_validated_by_slack_sdk_too(fake_slack):
    client = _client(fake_slack)
    long_id = [{"type": "divider", "block_id": "x" * 256}]  # fine for block_kit_errors, not for slack_sdk
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=long_id)
    assert caught.value.response["error"] == "invalid_blocks"
    assert "block_id" in caught.value.response["errors"][0]
    assert fake_slack.top_level() == [] and fake_slack.messages == []


def test_channels_that_exist():
    with FakeSlack(channels=("#flank", "C0KNOWN")) as fake:
        client = _client(fake)
        assert client.chat_postMessage(channel="#flank", text="x")["ok"]
        assert client.chat_postMessage(channel=fake.channel_id("#flank"), text="x")["ok"]
        assert client.conversations_history(channel="C0KNOWN")["ok"]
        assert _error(client.chat_postMessage, channel="#nope", text="x") == "channel_not_found"
        assert _error(client.conversations_history, channel="C0NOPE") == "channel_not_found"
        wrong = WebClient(token="xoxb-wrong", base_url=fake.url, retry_handlers=[])
        wrong.proxy = None
        assert _error(wrong.conversations_history, channel="C0KNOWN") == "invalid_auth"


def _outcomes(seed: int, calls: int = 30) -> tuple[list[str], dict[str, int], int]:
    with FakeSlack() as fake:
        client = _client(fake)
        fake.chaos(rate_429=0.3, rate_500=0.2, retry_after=7, seed=seed)
        outcomes = []
        for i in range(calls):
            try:
                client.chat_postMessage(channel=CHANNEL, text=f"m{i}")
                outcomes.append("ok")
            except SlackApiError as err:
                status = err.response.status_code
                if status == 429:
                    assert err.response.headers["Retry-After"] == "7" and err.response["error"] == "ratelimited"
                else:
                    assert status == 500 and "Internal Server Error" in str(err.response.data)
                outcomes.append(str(status))
        fake.chaos()  # off
        assert client.conversations_history(channel=FakeSlack.channel_id(CHANNEL))["ok"]
        return outcomes, dict(fake.injected), len(fake.top_level())


def test_chaos_is_deterministic_with_a_seed():
    outcomes, injected, stored = _outcomes(seed=3)
    assert (outcomes, injected, stored) == _outcomes(seed=3)
    assert outcomes != _outcomes(seed=4)[0]
    assert injected == {"429": outcomes.count("429"), "500": outcomes.count("500"), "slow": 0}
    assert injected["429"] > 0 and injected["500"] > 0 and stored == outcomes.count("ok") > 0


def test_chaos_only_for_chosen_methods(fake_slack):
    client = _client(fake_slack)
    fake_slack.chaos(rate_500=1.0, methods=["conversations.history"])
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]
    with pytest.raises(SlackApiError) as caught:
        client.conversations_history(channel=FakeSlack.channel_id(CHANNEL))
    assert caught.value.response.status_code == 500
    assert fake_slack.injected == {"429": 0, "500": 1, "slow": 0}
    with pytest.raises(ValueError):
        fake_slack.chaos(rate_429=0.6, rate_500=0.6)
    with pytest.raises(ValueError):
        fake_slack.chaos(rate_500=0.1, methods=["chat.delete"])


def test_slow_answer_times_out_but_slack_has_the_message(fake_slack):
    fake_slack.chaos(rate_slow=1.0, slow_seconds=2)
    client = _client(fake_slack, timeout=1)
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        client.chat_postMessage(channel=CHANNEL, text="in doubt", metadata=_meta("slow1"))
    assert time.monotonic() - started < 1.9
    assert [m["text"] for m in fake_slack.top_level()] == ["in doubt"]
    assert fake_slack.alert_ids() == ["slow1"] and fake_slack.injected["slow"] == 1
    assert fake_slack.requests[-1].delay == 2

    started = time.monotonic()  # reads are never slow, and a held-back answer blocks no one
    found = client.conversations_history(channel=FakeSlack.channel_id(CHANNEL), include_all_metadata=True)["messages"]
    assert time.monotonic() - started < 0.5
    assert found[0]["metadata"]["event_payload"]["alert_id"] == "slow1"


def test_stop_does_not_wait_for_a_slow_answer():
    fake = FakeSlack().start()
    fake.chaos(rate_slow=1.0, slow_seconds=30)
    client = _client(fake, timeout=60)
    errors: list[BaseException] = []

    def post() -> None:
        try:
            client.chat_postMessage(channel=CHANNEL, text="x")
        except BaseException as err:  # noqa: BLE001 - the connection is closed under it
            errors.append(err)

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    deadline = time.monotonic() + 5
    while not fake.top_level() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.top_level(), "the slow post never arrived"
    started = time.monotonic()
    fake.stop()
    poster.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not poster.is_alive() and errors  # the client saw the connection close, no answer

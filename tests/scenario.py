"""A small, realistic news scenario served as real RSS feeds on 127.0.0.1, for end-to-end tests.

Three outlets report the German brigade in Lithuania (English, German, Lithuanian), two report the
Kaliningrad transit dispute, and the rest is unrelated news. Times are recent so every window applies.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from flankwatch.replay import ReplayItem
from flankwatch.replay_server import ReplayServer

BASE = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


def _item(outlet: str, language: str, hours: float, title: str, description: str, path: str) -> ReplayItem:
    link = f"https://{outlet.lower().replace(' ', '')}.example/{path}?utm_source=rss&utm_medium=feed"
    return ReplayItem(outlet, language, "", title, link, description, BASE + timedelta(hours=hours), link)


ITEMS = [
    _item("Baltic Wire", "en", 0, "Germany's brigade in Lithuania reaches 4,800 troops",
          "The Bundeswehr's Panzerbrigade 45 in Rūdninkai and Rukla will have 4,800 soldiers by 2027, "
          "about 100 km from the Russian border.", "brigade-4800"),
    _item("Euro Defence Daily", "en", 1, "German armoured brigade in Lithuania to grow to 4,800 soldiers",
          "Berlin confirmed that its permanent brigade stationed in Lithuania near Vilnius will number "
          "4,800 troops and 200 civilians.", "german-brigade-lithuania"),
    _item("Nordpresse", "de", 2, "Panzerbrigade 45 in Litauen: Bundeswehr stockt auf 4.800 Soldaten auf",
          "Die Brigade Litauen der Bundeswehr in Rūdninkai soll bis 2027 rund 4.800 Soldaten umfassen.",
          "panzerbrigade-45"),
    _item("Baltic Wire", "en", 5, "Lithuania opens Rūdninkai base for German brigade, troop target now 5,000",
          "Lithuania's defence minister said the German brigade at Rūdninkai could reach 5,000 troops, "
          "with a second base at Rukla.", "rudninkai-base"),
    _item("Baltic Wire", "en", 3, "Russia threatens Lithuania over Kaliningrad rail transit ban",
          "Moscow warned Vilnius of consequences after Lithuania blocked the transit of sanctioned goods "
          "by rail to the Kaliningrad exclave.", "kaliningrad-transit"),
    _item("Euro Defence Daily", "en", 4, "Kaliningrad transit row: Lithuania rejects Russian blockade claims",
          "Lithuania said it is only applying EU sanctions to rail transit to Kaliningrad, rejecting "
          "Russian accusations of a blockade.", "kaliningrad-row"),
    _item("Euro Defence Daily", "en", 2, "Champions League: late goal sends holders into the quarter-finals",
          "A stoppage-time header decided the football match in front of a sold-out stadium.", "football"),
    _item("Nordpresse", "de", 3, "Neuer Kinofilm bricht Rekorde an den Kinokassen",
          "Der Film spielte am ersten Wochenende mehr ein als jeder andere in diesem Jahr.", "kino"),
]


def write_feeds_file(path: Path, server: ReplayServer) -> Path:
    feeds = [{"name": outlet, "url": server.feed_url(outlet), "language": server.language(outlet),
              "country": "xx"} for outlet in server.outlets]
    path.write_text(yaml.safe_dump({"feeds": feeds}, allow_unicode=True), encoding="utf-8")
    return path

"""Canonical article URLs: the same article reached through different links gets the same id."""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Query parameters that only say where a click came from.
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid",
        "ttclid", "li_fat_id", "mc_cid", "mc_eid", "ocid", "ref", "ref_src", "ref_url", "cmpid", "_ga", "_gl",
        "_hsenc", "_hsmi", "mkt_tok", "xtor", "wt_mc", "wt.mc_id", "ns_mchannel", "ns_source", "ns_campaign",
        "ns_linkname", "ns_fee", "s_cid", "sr_share", "ito", "__twitter_impression", "spm", "oly_enc_id",
        "oly_anon_id", "vero_id", "rb_clickid", "soc_src", "soc_trk", "guccounter", "guce_referrer",
        "guce_referrer_sig",
    }
)
TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "hsa_")
DEFAULT_PORTS = {"http": "80", "https": "443"}


def is_tracking_param(name: str) -> bool:
    key = unquote_plus(name).strip().lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters, `/` for an empty
    path. Everything else (path, the other parameters and their order, their encoding) is kept as is."""
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal
        close = hostport.find("]")
        host, port = hostport[: close + 1], hostport[close + 1 :].lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    host = host.lower().rstrip(".")
    if port and DEFAULT_PORTS.get(scheme) == port:
        port = ""
    netloc = f"{userinfo}{at}{host}" + (f":{port}" if port else "")
    path = parts.path or ("/" if netloc else "")
    if not netloc and path.startswith("//"):  # "http:////h/a": kept as is, "//h" would become a host next time
        path = "/" + path.lstrip("/")
    query = "&".join(
        piece for piece in parts.query.split("&") if piece.strip() and not is_tracking_param(piece.split("=", 1)[0])
    )
    # Stripped again: dropping an empty query or fragment can leave whitespace at the end ("h/a ?" -> "h/a "),
    # which the next call would strip (not idempotent).
    return urlunsplit((scheme, netloc, path, query, "")).strip()


def is_site_root(url: str) -> bool:
    """A link to a site's home page (no path, no query): some feeds put it on every item, it names no article."""
    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query

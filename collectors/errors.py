"""Error classes of a failed poll: one short, stable word per kind of trouble, kept in `FetchRecord.error_class`
and `Feed.last_error_class` so that failures can be counted and alerted on by kind."""

from __future__ import annotations

# network / HTTP (collectors.http)
DNS = "dns"
CONNECT = "connect"
TIMEOUT = "timeout"
TLS = "tls"
PROTOCOL = "protocol"  # the server broke HTTP (malformed response, bad content encoding)
HTTP_4XX = "http_4xx"
HTTP_5XX = "http_5xx"
HTTP_OTHER = "http_other"  # any other unusable status (e.g. a 3xx without Location)
RATE_LIMITED = "rate_limited"  # 429: we asked too often (its Retry-After is honoured)
TOO_LARGE = "too_large"
TOO_MANY_REDIRECTS = "too_many_redirects"
INVALID_URL = "invalid_url"
FORBIDDEN_ADDRESS = "forbidden_address"  # the host resolves to a private, loopback or link-local address (SSRF)
# content (collectors.parse)
XML_ENTITIES = "xml_entities"
NOT_A_FEED = "not_a_feed"
PARSE_ERROR = "parse_error"
# anything unexpected while handling one feed (collectors.collect)
INTERNAL = "internal"

ERROR_CLASSES = frozenset(
    {
        DNS, CONNECT, TIMEOUT, TLS, PROTOCOL, HTTP_4XX, HTTP_5XX, HTTP_OTHER, RATE_LIMITED, TOO_LARGE,
        TOO_MANY_REDIRECTS, INVALID_URL, FORBIDDEN_ADDRESS, XML_ENTITIES, NOT_A_FEED, PARSE_ERROR, INTERNAL,
    }
)


class FeedError(Exception):
    """A feed that cannot be used, with its error class (one of `ERROR_CLASSES`)."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(f"{error_class}: {message}")
        self.error_class = error_class
        self.message = message

#!/bin/sh
# es-setup (docker-compose.yml): give the built-in kibana_system user the password from .env
# (KIBANA_PASSWORD), so that Kibana can log in to Elasticsearch. Idempotent; exits 0 when done.
set -eu
: "${ELASTICSEARCH_URL:?}" "${ELASTIC_PASSWORD:?}" "${KIBANA_PASSWORD:?}"
case "$ELASTIC_PASSWORD$KIBANA_PASSWORD" in
    *change-me*) echo "es-setup: ELASTIC_PASSWORD / KIBANA_PASSWORD still hold the placeholders of .env.example: edit .env" >&2; exit 1 ;;
esac

tries=0
until code=$(curl -s -o /tmp/reply -w '%{http_code}' -u "elastic:$ELASTIC_PASSWORD" \
        -H 'Content-Type: application/json' -X POST "$ELASTICSEARCH_URL/_security/user/kibana_system/_password" \
        -d "{\"password\":\"$KIBANA_PASSWORD\"}") && [ "$code" = 200 ]; do
    tries=$((tries + 1))
    if [ "$code" = 401 ]; then
        # ELASTIC_PASSWORD only takes effect when es-data is first created.
        echo "es-setup: Elasticsearch refuses user elastic: ELASTIC_PASSWORD differs from the one es-data was created with" >&2
        exit 1
    fi
    [ "$tries" -lt 30 ] || { echo "es-setup: gave up after $tries tries (HTTP $code): $(cat /tmp/reply 2>/dev/null)" >&2; exit 1; }
    sleep 5
done
echo "es-setup: kibana_system password set"

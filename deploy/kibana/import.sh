#!/bin/sh
# kibana-init (docker-compose.yml): wait until Kibana reports itself available, then import the Flankwatch
# saved objects (data views, saved searches, dashboard) from flankwatch.ndjson, replacing older copies.
# Re-running it is harmless. By hand: curl -u elastic:... -H 'kbn-xsrf: true' \
#   -F file=@deploy/kibana/flankwatch.ndjson 'http://localhost:5601/api/saved_objects/_import?overwrite=true'
set -eu
: "${KIBANA_URL:?}" "${ELASTIC_PASSWORD:?}"
here=$(dirname "$0")

tries=0
until curl -s -u "elastic:$ELASTIC_PASSWORD" "$KIBANA_URL/api/status" | grep -q '"level":"available"'; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "kibana-init: Kibana not available after $tries tries" >&2; exit 1; }
    sleep 5
done

reply=$(curl -s -u "elastic:$ELASTIC_PASSWORD" -H 'kbn-xsrf: true' \
    -F "file=@$here/flankwatch.ndjson" "$KIBANA_URL/api/saved_objects/_import?overwrite=true")
case "$reply" in
    *'"success":true'*) echo "kibana-init: imported: $reply" ;;
    *) echo "kibana-init: import failed: $reply" >&2; exit 1 ;;
esac

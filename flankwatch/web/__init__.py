"""The analyst's desk: `flankwatch serve`, server-rendered pages over the archive and the state DB, each
with a JSON twin under `/api/` (the URL holds the whole state, as in Datasette)."""

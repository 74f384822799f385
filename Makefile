# Two commands do all the set-up on a fresh machine:
#   make repro   install, rebuild the whole pipeline (`dvc repro`), show its metrics and the report's path
#   make test    install, then run the test suite
VENV ?= .venv
# Where pip's default index has only CUDA builds of torch (docker/): https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro serve test bench clean-data

install: $(VENV)/.installed

# torch first, alone: 2.13.0 is a CPU build; any other torch request pulls CUDA packages.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install -e ".[dev]"
	touch $@

# One Prefect server (with its UI) for every stage, and one MLflow parent run for the stages' runs.
repro: install
	python -m pipelines.repro
	@python -m lawm.evaluation.report data/report/report.md
	@echo "report: $(CURDIR)/data/report/report.md (all metrics: dvc metrics show)"

# The Prefect UI, with every DVC stage as a deployment to run and retry from it (Ctrl-C stops it).
serve: install
	python -m pipelines.prefect_server python -m pipelines.serve

test: install
	pytest -q

bench: install
	python benchmarks/decode.py
	python benchmarks/feature_cache.py
	python benchmarks/training.py
	python benchmarks/idm_readout.py
	python benchmarks/rope.py
	python benchmarks/gelu.py
	python benchmarks/planning.py
	python benchmarks/stage_exit.py
	python benchmarks/pipeline.py

clean-data:
	rm -rf data/worlds data/clips data/features data/latent_actions data/evaluation data/world_models \
		data/controllers data/planning data/report data/metrics mlflow.db mlruns

# The two commands a newcomer types: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train test lint typecheck pytest clean bench-setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Train CartPole-v1 with the shipped config until solved (mean return >= 475 over the last
# 20 episodes; trainer.iterations caps the run), then print the final score and the run's
# directory, TensorBoard logs and checkpoint. Options: make train ARGS="--seed 3".
train: setup
	$(BIN)/coltra train -c scripts/configs/gym_config.yaml $(ARGS)

# The peers the benchmarks compare against (also part of the dev extras `make setup` installs).
bench-setup: setup
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[bench]"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy coltra

pytest: setup
	$(BIN)/python -m pytest -q --durations=15  # the slowest tests, to keep the suite under 10 min

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The two commands of the README:  `make demo`  and  `make test`.
# Both create the virtual environment on first use and are safe to run again.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup

setup: $(STAMP)

# torch first, from the local CPU wheel: a plain `torch` requirement would
# otherwise pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The main job: a world for the default prompt ("a snowy pine forest by a
# frozen lake at dusk") from the shipped weights, on the CPU, with a preview.
demo: $(STAMP)
	$(VENV)/bin/worldgen make -o out/world.ply

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-node-tools.sh
	$(PY) -m pytest -q

# The commands people type. Each creates .venv when missing (torch's CPU wheel first, so nothing
# pulls a CUDA build), then installs the project in editable mode.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The web page tests drive Debian's Chromium (tests/test_web_page.py looks for this path).
CHROMIUM := /usr/bin/chromium

.PHONY: demo test test-slow fuzz browser bench bench-serve bench-all lint format clean constraints

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,ray,onnx,tracking]'
	touch $(STAMP)

# Rewrite constraints.txt from the venv (after changing pyproject.toml's dependencies): the
# header stays, torch stays pinned above, kgfuse itself is left out.
constraints: $(STAMP)
	{ grep '^#' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

demo: $(STAMP)
	$(BIN)/kgfuse demo

# Root on Debian: installed with apt-get. Otherwise make stops before building anything and
# prints the command to run.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the web page tests: apt-get install chromium"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	elif command -v apt-get >/dev/null; then \
		echo "the web page tests need Debian's Chromium at $(CHROMIUM); run:" >&2; \
		echo "    sudo apt-get install -y chromium" >&2; exit 1; \
	else \
		echo "the web page tests need Chromium at $(CHROMIUM); install your system's" \
			"chromium package (Debian: sudo apt-get install -y chromium)" >&2; exit 1; \
	fi
	@test -x $(CHROMIUM) || { echo "apt-get installed no $(CHROMIUM)" >&2; exit 1; }

browser: $(CHROMIUM)

# One pytest worker per physical core (pytest-xdist): each test runs alone in its worker, its
# files in its own tmp_path and its servers on free ports, so the order does not matter.
test: $(CHROMIUM) $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n auto --durations=20

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

# The property-based tests with fresh random inputs, 20x as many as `make test` draws.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz_*.py -q

bench: $(STAMP)
	$(BIN)/python bench/kg_load.py --json bench/results/kg_load.json

bench-serve: $(STAMP)
	$(BIN)/python bench/serve.py --json bench/results/serve.json

bench-all: bench
	$(BIN)/python bench/linking.py --json bench/results/linking.json
	$(BIN)/python bench/generalization.py --json bench/results/generalization.json
	$(BIN)/python bench/serve.py --json bench/results/serve.json
	$(BIN)/python bench/kg_scale.py --json bench/results/kg_scale.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

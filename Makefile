# inspector — the two commands of a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit test-gpu test-tensorrt bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v < (3, 13) else "inspector needs Python 3.10-3.12 (set PYTHON=...), found %d.%d" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the daemon on its embedded default (sim line, demo model, CPU, PLC simulator)
run: $(STAMP)
	$(BIN)/inspector run --config config.yaml

## test: lint, type-check and the CPU test suite
test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check inspector tests tools benchmarks
	$(BIN)/ruff format --check inspector tests tools benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) .cache/bin/promtool .cache/bin/chromium .cache/bin/mosquitto
	$(BIN)/python -m pytest -m "not gpu and not tensorrt" -q

.cache/bin/promtool:
	tools/get-promtool.sh

# Debian's chromium for the web page's browser test (driven by Playwright, no download)
.cache/bin/chromium:
	tools/get-chromium.sh

# The MQTT tests start their own mosquitto (Debian package) on a free loopback port.
.cache/bin/mosquitto:
	tools/get-mosquitto.sh

## test-gpu: tests marked gpu (needs an NVIDIA GPU and cuda-python)
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m gpu -q tests/gpu

## test-tensorrt: tests marked tensorrt (needs TensorRT, cuda-python and an NVIDIA GPU).
## On a Jetson create the venv with --system-site-packages so it sees JetPack's TensorRT.
test-tensorrt: $(STAMP)
	$(BIN)/python -m pytest -m tensorrt -q tests/tensorrt

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_cpu.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# inspector — the two commands of a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit systemd-tools cxx test-gpu test-tensorrt bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v < (3, 14) else "inspector needs Python 3.10-3.13 (set PYTHON=...), found %d.%d" % v)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## run: the daemon on its embedded default (sim line, demo model, CPU, PLC simulator)
run: $(STAMP)
	$(BIN)/inspector run --demo --config config.yaml

## test: lint, type-check and the CPU test suite
test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check inspector tests tools benchmarks
	$(BIN)/ruff format --check inspector tests tools benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) .cache/bin/promtool .cache/bin/prometheus .cache/bin/chromium .cache/bin/mosquitto systemd-tools cxx
	$(BIN)/python -m pytest -m "not gpu and not tensorrt" -q

# promtool (metrics lint, alert-rule unit tests) and the prometheus server (the
# dashboard test scrapes a running daemon), unpacked from Debian's package.
.cache/bin/promtool .cache/bin/prometheus:
	tools/get-promtool.sh

# systemd-analyze (the units' security score) and systemd-sysusers (install.sh).
systemd-tools:
	@command -v systemd-analyze >/dev/null && command -v systemd-sysusers >/dev/null || \
	  { apt-get update >/dev/null && apt-get install -y --no-install-recommends systemd >/dev/null; }

# g++ builds the GPU preprocessing kernel's source for the CPU (tests/support/kernel_cpu.py).
cxx:
	@command -v g++ >/dev/null || \
	  { apt-get update >/dev/null && apt-get install -y --no-install-recommends g++ >/dev/null; }

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

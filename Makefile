# Two commands for a fresh machine (Debian/Ubuntu, Python 3.11):
#   make demo   set up .venv, reconstruct the shipped example with the shipped model in headless Blender -> out/
#   make test   set up .venv (and .venv-bpy42), lint, run every test (core and in-Blender), then the
#               in-Blender tests again on the manifest's minimum Blender, 4.2 (the bpy 4.2.0 wheel)
# Both reuse the environment on the next run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VENV42 := .venv-bpy42
BIN42  := $(VENV42)/bin
STAMP42 := $(VENV42)/.installed
# the Blender tier must run, on exactly these bpy versions (tests/blender/conftest.py fails instead of skipping)
BPY    := $(shell sed -n 's/^bpy==//p' requirements-dev.txt)
BPY42  := $(shell sed -n 's/^bpy==//p' requirements-bpy42.txt)
DEMO_IMAGE ?= examples/chair_dining.png

.PHONY: env env-bpy42 demo test lint package bench evaluate clean

env: $(STAMP)

env-bpy42: $(STAMP42)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -c "import torch, bpy, cv2, skimage, trimesh, safetensors; print('environment ready: torch', torch.__version__, '| blender', bpy.app.version_string)"
	touch $(STAMP)

$(STAMP42): requirements.txt requirements-bpy42.txt
	$(PYTHON) -m venv $(VENV42)
	$(BIN42)/python -m pip install --quiet --upgrade pip
	$(BIN42)/python -m pip install --quiet -r requirements-bpy42.txt
	$(BIN42)/python -c "import torch, bpy; print('Blender 4.2 environment ready: torch', torch.__version__, '| blender', bpy.app.version_string)"
	touch $(STAMP42)

demo: env
	$(BIN)/python scripts/batch_reconstruct.py --input $(DEMO_IMAGE) --out out --steps 10 --render
	@echo
	@echo "Results in $(CURDIR)/out:"
	@ls -1 out | sed 's/^/  out\//'

lint: env
	$(BIN)/ruff check .

test: lint env-bpy42
	SFI_REQUIRE_BPY=$(BPY) $(BIN)/python -m pytest -q -p no:cacheprovider tests
	SFI_REQUIRE_BPY=$(BPY42) $(BIN42)/python -m pytest -q -p no:cacheprovider tests/blender

package: env
	$(BIN)/python scripts/package_extension.py

bench: env
	$(BIN)/python -m training bench --model chairs

# make evaluate MODEL=runs/model12/chairs.json measures another model (its rows: rows_<MODEL path with _>.jsonl)
MODEL ?= chairs
TAG = $(subst /,_,$(basename $(MODEL)))
evaluate: env
	$(BIN)/python -m training evaluate --model $(MODEL) --images 100
	$(BIN)/python -m training real-build --out runs/real
	$(BIN)/python -m training real-evaluate --cases runs/real/cases.json --model $(MODEL) --steps 10 0 --batch 1 \
		--rows runs/real/rows_$(TAG).jsonl --json runs/real/report_$(TAG).json
	test -x runs/infinigen-venv/bin/python || training/infinigen/setup.sh
	runs/infinigen-venv/bin/python training/infinigen/make_chairs.py --out runs/infinigen --chairs 160
	$(BIN)/python -m training real-evaluate --cases runs/infinigen/cases.json --model $(MODEL) --steps 10 0 --batch 1 \
		--rows runs/infinigen/rows_$(TAG).jsonl --json runs/infinigen/report_$(TAG).json

clean:
	rm -rf out dist .pytest_cache .ruff_cache

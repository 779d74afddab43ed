# Two commands for a fresh machine (Debian/Ubuntu, Python 3.11):
#   make demo   set up .venv, reconstruct the shipped example with the shipped model in headless Blender -> out/
#   make test   set up .venv, lint, run every test (core and in-Blender)
# Both reuse the environment on the next run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_IMAGE ?= examples/chair_dining.png

.PHONY: env demo test lint package bench evaluate clean

env: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -c "import torch, bpy, cv2, skimage, trimesh, safetensors; print('environment ready: torch', torch.__version__, '| blender', bpy.app.version_string)"
	touch $(STAMP)

demo: env
	$(BIN)/python scripts/batch_reconstruct.py --input $(DEMO_IMAGE) --out out --steps 10 --render
	@echo
	@echo "Results in $(CURDIR)/out:"
	@ls -1 out | sed 's/^/  out\//'

lint: env
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

package: env
	$(BIN)/python scripts/package_extension.py

bench: env
	$(BIN)/python -m training bench --model chairs

evaluate: env
	$(BIN)/python -m training evaluate --model chairs --images 100
	$(BIN)/python -m training real-build --out runs/real
	$(BIN)/python -m training real-evaluate --cases runs/real/cases.json --model chairs --steps 0 10
	test -x runs/infinigen-venv/bin/python || training/infinigen/setup.sh
	runs/infinigen-venv/bin/python training/infinigen/make_chairs.py --out runs/infinigen --chairs 160
	$(BIN)/python -m training real-evaluate --cases runs/infinigen/cases.json --model chairs --steps 10 0 \
		--rows runs/infinigen/rows_chairs.jsonl --json runs/infinigen/report_chairs.json

clean:
	rm -rf out dist .pytest_cache .ruff_cache

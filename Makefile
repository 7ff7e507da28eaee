# Two commands on a fresh machine:  `make run` (stylize test_imgs/)  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml tools/setup_env.sh
	PY=$(PY) VENV=$(VENV) bash tools/setup_env.sh
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/blendgan transfer --input_img_path test_imgs/face_imgs --style_img_path test_imgs/style_imgs

test: $(STAMP)
	$(BIN)/python -m pytest -ra tests

# the daily subset: no browser, ONNX export, multi-process, torch.compile or long tests (`make test` runs all).
# Measured 2026-12-06 on a shared 2-core machine: 16:20 wall, 986 s CPU, 708 tests (load average 3.8-4.7);
# before the slow marks and smaller fixtures of issue 21: 38:48 wall, 1746 s CPU (load 0.7 rising to 6.4).
# Not yet the 3 minutes aimed at: see docs/development.md.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not (browser or export or distributed or compile or slow)" tests

lint: $(STAMP)
	$(BIN)/ruff check .

# not run over the whole tree yet (branches in flight); `ruff format FILES` for files you change
format: $(STAMP)
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) results .pytest_cache

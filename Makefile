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

# the daily subset: no browser, ONNX export, multi-process, torch.compile, CUDA or long tests (`make test` runs all;
# the CUDA tests skip there without a GPU); its time is in docs/development.md ("Test suite").
# Two pytest processes (pytest-xdist, a test file per process at a time), one thread each.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -n 2 --dist loadfile -m "not (browser or export or distributed or compile or cuda or slow)" tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the whole tree is ruff-formatted and `make lint` (CI) checks it
format: $(STAMP)
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) results .pytest_cache

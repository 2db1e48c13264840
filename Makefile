# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install CPU PyTorch (TORCH_SPEC) and the project, then run.
# GPU users: install your own torch into .venv first and pass TORCH_SPEC= (empty).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# Optional index for torch alone, e.g. https://download.pytorch.org/whl/cpu for the CPU build.
TORCH_INDEX ?=
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: install demo test lint browser cursor-themes llama-vocab speech clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $@

install: $(VENV)/.installed

browser:
	bash scripts/install_chromium.sh

cursor-themes:
	bash scripts/install_cursor_themes.sh

# The real LLaMA vocabulary for the released-model fidelity tests (npm llama-tokenizer-js, rebuilt).
llama-vocab: install
	bash scripts/llama_vocab.sh $(BIN)/python

# espeak-ng voices the demo narration and the speech tests (a Debian package).
speech:
	bash scripts/install_espeak.sh

demo: install speech
	$(BIN)/quilt-llava demo --out $(DEMO_OUT)

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

test: install browser cursor-themes llama-vocab speech lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) test_artifacts .pytest_cache .ruff_cache .cache/llama-vocab

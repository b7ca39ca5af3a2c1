# resbench: `make reproduce` reruns the paper's table; `make test` runs the tests.
# Each target sets up .venv/ by itself the first time.
VENV    ?= .venv
PY      := $(VENV)/bin/python
RESBENCH := $(VENV)/bin/resbench
# The torch build pinned here is the one this project is tested with.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
ARGS    ?=

.PHONY: install test lint reproduce report ui clean gpu-kit

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,ray,server]'
	touch $@

test: install
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

reproduce: install
	$(RESBENCH) reproduce $(ARGS)

report: install
	$(RESBENCH) report $(ARGS)

ui: install
	$(RESBENCH) ui $(ARGS)

clean:
	rm -rf $(VENV) results *.egg-info

# The kit scripts/gpu_check.sh needs on an offline GPU host (docs/PERFORMANCE.md), made where pip
# works: the JPEG archive, its rebuild script, MLflow's wheels. Then what travels to the host (the
# repository's tracked and untracked non-ignored files, and the kit) must stay under 64 MiB.
SHARED  ?= ../shared
KIT     ?= results/gpu-kit
KIT_MAX_MIB ?= 64

gpu-kit:
	mkdir -p $(KIT)
	install -m 644 $(SHARED)/data/cifar10-jpeg.tar.xz $(SHARED)/data/make_cifar10_batches.py $(KIT)/
	bash $(SHARED)/gpu/fetch-mlflow-wheels.sh $(KIT)/wheels
	# what resbench declares beyond MLflow's wheels: system metrics (psutil, pynvml) and filelock
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
	  -d $(KIT)/wheels psutil nvidia-ml-py filelock
	@{ git ls-files -z --cached --others --exclude-standard; find $(KIT) -type f -print0; } \
	  | du -cb --files0-from=- 2>/dev/null | tail -n 1 \
	  | awk -v max=$(KIT_MAX_MIB) '{ mib = $$1 / 1048576; where = "the repository and $(KIT)"; \
	      if (mib > max) { printf "error: %.1f MiB of %s would travel to the GPU host, over its %d MiB\n", \
	                              mib, where, max > "/dev/stderr"; exit 1 } \
	      printf "gpu-kit: %.1f MiB of %s travel to the GPU host (at most %d MiB)\n", mib, where, max }'

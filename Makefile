# resbench: `make reproduce` reruns the paper's table; `make test` runs the fast tests (units and
# in-process integration), `make test-all` every test (Ray, PostgreSQL, Chromium, the GPU-check
# smoke test, multi-epoch resumes).
# Each target sets up .venv/ by itself the first time.
VENV    ?= .venv
PY      := $(VENV)/bin/python
RESBENCH := $(VENV)/bin/resbench
# The torch build pinned here is the one this project is tested with.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
ARGS    ?=

.PHONY: install test test-all lint reproduce report ui clean gpu-kit gpu-kit-settings

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,ray,server]'
	touch $@

test: install
	$(PY) -m pytest -q -m "not slow"

test-all: install
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
# works from three explicit settings: JPEG_ARCHIVE (CIFAR-10 as JPEG files, .tar.xz), BATCH_SCRIPT
# (the script that rebuilds CIFAR-10's python batches from that archive) and WHEELS_FROM (a folder
# of MLflow's wheels for the host's Python, or a script that downloads them into the folder it is
# given). What travels to the GPU host (the repository's tracked and untracked non-ignored files,
# and the kit) must stay under 64 MiB.
KIT     ?= results/gpu-kit
KIT_MAX_MIB ?= 64
JPEG_ARCHIVE ?=
BATCH_SCRIPT ?=
WHEELS_FROM ?=

gpu-kit-settings:
	@for kv in "JPEG_ARCHIVE=$(JPEG_ARCHIVE)" "BATCH_SCRIPT=$(BATCH_SCRIPT)" "WHEELS_FROM=$(WHEELS_FROM)"; do \
	  k=$${kv%%=*}; v=$${kv#*=}; \
	  [ -n "$$v" ] || { echo "error: $$k is not set: make gpu-kit JPEG_ARCHIVE=FILE BATCH_SCRIPT=FILE WHEELS_FROM=DIR|SCRIPT (docs/PERFORMANCE.md)" >&2; exit 2; }; \
	  [ -e "$$v" ] || { echo "error: $$k: no such file or folder: $$v" >&2; exit 2; }; \
	done

gpu-kit: gpu-kit-settings install
	mkdir -p $(KIT)/wheels
	install -m 644 $(JPEG_ARCHIVE) $(KIT)/cifar10-jpeg.tar.xz
	install -m 644 $(BATCH_SCRIPT) $(KIT)/make_cifar10_batches.py
	if [ -d "$(WHEELS_FROM)" ]; then install -m 644 "$(WHEELS_FROM)"/*.whl $(KIT)/wheels/; \
	else bash "$(WHEELS_FROM)" $(KIT)/wheels; fi
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

# resbench: `make reproduce` reruns the paper's table; `make test` runs the tests.
# Each target sets up .venv/ by itself the first time.
VENV    ?= .venv
PY      := $(VENV)/bin/python
RESBENCH := $(VENV)/bin/resbench
# The torch build pinned here is the one this project is tested with.
TORCH   ?= torch==2.14.1 torchvision==0.29.1
ARGS    ?=

.PHONY: install test reproduce report ui clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,ray,server]'
	touch $@

test: install
	$(PY) -m pytest -q

reproduce: install
	$(RESBENCH) reproduce $(ARGS)

report: install
	$(RESBENCH) report $(ARGS)

ui: install
	$(RESBENCH) ui $(ARGS)

clean:
	rm -rf $(VENV) results *.egg-info

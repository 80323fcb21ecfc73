# ds2cli: set-up, tests, demo and benchmarks. Every target builds what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DS2    := $(VENV)/bin/ds2cli
EXP    ?= exp

.PHONY: setup test demo bench lint clean

setup: $(VENV)/.installed $(VENV)/bin/lmplz

$(VENV)/.installed: setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[synth,dev]'
	touch $@

$(VENV)/bin/lmplz: | $(VENV)/.installed
	scripts/build_kenlm.sh $(VENV)

test: setup
	$(PY) -m pytest -q

demo: setup
	scripts/demo.sh $(DS2) $(EXP) $(PY)

bench: setup
	$(PY) -m benchmarks.run_all

lint: setup
	$(PY) -m pyflakes ds2cli data_prep tests benchmarks

clean:
	rm -rf $(EXP) .pytest_cache

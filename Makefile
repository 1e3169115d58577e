# Two commands do all the set-up on a fresh machine (Python 3.10+ with venv):
#   make demo   installs into .venv if needed, then runs the whole chain on the bundled demo corpus
#   make test   installs into .venv if needed, then runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp's name carries a hash of the install inputs, so editing requirements.txt re-installs.
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup demo test reproduce bench clean-outputs

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(PY) experiments/reproduce.py --demo

test: setup
	$(PY) -m pytest -q -n 2 --durations=15

reproduce: setup
	$(PY) experiments/reproduce.py

bench: setup
	$(PY) experiments/bench_pipeline.py

clean-outputs:
	rm -rf outputs alignments/audio_alignments_*.json words_in_order*.json

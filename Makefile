VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := data/demo/embeddings.csv

.PHONY: setup run test demo bench bench-scale clean

setup: $(STAMP)

# CPU torch first (it lies on disk), then the project under the same pin so no CUDA build is pulled.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

$(DEMO): | $(STAMP)
	$(VENV)/bin/vggtab demo

demo: $(DEMO)

run: $(STAMP) $(DEMO)
	$(VENV)/bin/vggtab

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/bench.py

# The scaling table alone (5k / 20k / 50k clips; `make bench` includes it): ~2.5 GB of generated data once.
bench-scale: $(STAMP)
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) data/demo data/.cache

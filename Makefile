# Every target installs what it needs: a virtual environment, Node.js and nginx when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench heap reliability deps clean

demo: $(STAMP) deps
	$(VENV)/bin/uota demo

test: $(STAMP) deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP) deps
	$(PY) -m pip install --quiet -e '.[test,bench]'
	PYTHONPATH=tests $(PY) bench/run_all.py --plot docs/performance.png

reliability: $(STAMP) deps
	PYTHONPATH=tests $(PY) bench/reliability.py

# Peak heap on MicroPython's unix port (built once into .cache/ from ../shared/micropython).
heap: $(STAMP)
	PYTHONPATH=tests $(PY) bench/heap.py $(HEAP_ARGS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests use: nginx (a real static host), Node.js (runs MicroPython's WebAssembly port).
deps:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache

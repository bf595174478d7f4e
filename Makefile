# Every target installs what it needs: a virtual environment, Node.js and nginx when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The demo needs only the package (and Node.js for MicroPython): not pytest and the test tools.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test bench heap reliability deps demo-deps clean

demo: $(DEMO_STAMP) demo-deps
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
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(DEMO_STAMP)

# Debian packages: Node.js runs MicroPython's WebAssembly port (the demo and the tests); the tests
# also use nginx (a real static host) and openssl.
DEMO_PACKAGES := node:nodejs npm:npm
TEST_PACKAGES := $(DEMO_PACKAGES) nginx:nginx openssl:openssl

demo-deps:
	@$(call install_missing,$(DEMO_PACKAGES))

deps:
	@$(call install_missing,$(TEST_PACKAGES))

# $(1): command:package pairs; installs the packages whose command is missing.
define install_missing
missing=""; \
for pair in $(1); do \
	command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair#*:}"; \
done; \
if [ -n "$$missing" ]; then \
	echo "installing Debian packages:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
fi
endef

clean:
	rm -rf $(VENV) .pytest_cache

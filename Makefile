# The two commands a new user needs:
#   make demo   set up (if needed) and run the main job on the embedded defaults
#   make test   set up (if needed) and run every test, lint and type check
SHELL := /bin/bash
.PHONY: setup demo test lint docs clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/test.sh

lint: setup
	@source scripts/env.sh && ruff check . && ruff format --check . && mypy

docs: setup
	@source scripts/env.sh && NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir site && echo "docs: site/index.html"

clean:
	rm -rf ros2_ws/build ros2_ws/install ros2_ws/log var site

# The two commands of the README:
#   make course   set up (first time only) and open the course in JupyterLab, on the
#                 working copies in work/ (git-ignored; notebooks/ keeps the reference outputs)
#   make test     set up (first time only) and run every test, notebooks included
# Set-up = a virtual environment in .venv, course_lib installed in it (editable),
# and a Jupyter kernel "Python (meta-learning course)" registered for this user
# (again at each `make install` / `make course`: the kernel runs the .venv of the
# checkout that registered it last, and the notebooks check that it is theirs).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_CONSTRAINTS ?= constraints.txt
KERNEL := meta-learning-course
KERNEL_NAME := Python (meta-learning course)

.PHONY: course test install notebooks sync site student clean-cache

# Copies notebooks/*.ipynb that work/ lacks (never one already there), then opens the copy.
course: install
	$(PY) -m course_tools.working_copy --notebooks notebooks --work work
	$(VENV)/bin/jupyter lab work/00_welcome.ipynb

test: $(STAMP)
	COURSE_MODE=smoke $(PY) -m pytest

install: $(STAMP)
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "$(KERNEL_NAME)"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (3.11 recommended); run: make PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c $(PIP_CONSTRAINTS) -e '.[test]'
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "$(KERNEL_NAME)"
	touch $(STAMP)

# Re-run every notebook in place (COURSE_MODE as set; default full) so that the
# committed .ipynb files show the outputs of a real run, re-pair them, and record
# the times in docs/notebook_times.json and the instructor notes' table.
# Progress bars print plain lines (no frozen widgets in the outputs).
notebooks: install
	$(PY) scripts/time_notebooks.py --in-place --record

# After editing a notebook's .py source (or its .ipynb in JupyterLab).
sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

# The executed course as a static website in site/ (fails on broken links or images).
site: $(STAMP)
	$(PY) -m course_tools.site build --notebooks notebooks --out site

# Student copies of the notebooks with exercises: solutions replaced by placeholders.
student: $(STAMP)
	$(PY) -m course_tools.exercises --notebooks notebooks --out student

clean-cache:
	rm -rf data/cache

# The two commands of the README:
#   make course   set up (first time only) and open the course in JupyterLab
#   make test     set up (first time only) and run every test, notebooks included
# Set-up = a virtual environment in .venv, course_lib installed in it (editable),
# and a Jupyter kernel "Python (meta-learning course)" registered for this user.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_CONSTRAINTS ?= constraints.txt

.PHONY: course test install notebooks sync site student clean-cache

course: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/00_welcome.ipynb

test: $(STAMP)
	COURSE_MODE=smoke $(PY) -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (3.11 recommended); run: make PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c $(PIP_CONSTRAINTS) -e '.[test]'
	$(PY) -m ipykernel install --user --name meta-learning-course --display-name "Python (meta-learning course)"
	touch $(STAMP)

# Re-run every notebook in place (COURSE_MODE as set; default full) so that the
# committed .ipynb files show the outputs of a real run, then re-pair them.
notebooks: $(STAMP)
	for nb in notebooks/[0-9][0-9]_*.py; do \
	  $(VENV)/bin/jupytext --sync "$$nb" && \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 "$${nb%.py}.ipynb" && \
	  $(VENV)/bin/jupytext --sync "$$nb" || exit 1; \
	done

# After editing a notebook's .py source (or its .ipynb in JupyterLab).
sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

# The executed course as a static website in site/ (fails on broken links or images).
site: $(STAMP)
	$(PY) -m course_lib.teaching.site build --notebooks notebooks --out site

# Student copies of the notebooks with exercises: solutions replaced by placeholders.
student: $(STAMP)
	$(PY) -m course_lib.teaching.exercises --notebooks notebooks --out student

clean-cache:
	rm -rf data/cache

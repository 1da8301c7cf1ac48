"""The capstone (notebook 09): every method of the course on the same episodes.

One protocol for all:

* **Test sets** (:data:`TEST_SETS`), each a pool of images ``[n, 1, 28, 28]``
  in [0, 1] with bright ink on a black background:

  - ``omniglot``: characters of Omniglot's 20 *evaluation* alphabets that are
    also in the test part of the Vinyals split. The shipped checkpoints were
    meta-trained on two different splits (ProtoNet, Matching nets and MAML on
    the Vinyals split, which mixes all 50 alphabets; the black-box learners
    and the pretrained features on the 30 background alphabets), so only this
    intersection is unseen by every one of them (rotation 0 only);
  - ``mnist``: the last 1,000 images of the MNIST test set (GPICL was
    meta-trained on the first 9,000, see :mod:`course_lib.gpicl`);
  - ``digits``: the 30 % of scikit-learn's digits that VSML's training split
    held out (:func:`course_lib.vsml.load_sources`, seed 1234), each 8x8
    image resized (bilinear) to 20x20 and padded to 28x28, MNIST's layout;
  - ``mnist-permuted``, ``digits-permuted``: the same images with their 784
    pixels shuffled by one fixed permutation, never seen by any model.

* **Episodes**: N-way K-shot (:data:`SETTINGS`: 5-way 1- and 5-shot, 2-way
  1-shot, and 10-way 10-shot for the methods that can take it), 15 queries
  per class (10 at 10 shots, as an Omniglot character has only 20 drawings),
  the same index lists for every row (saved in ``episodes.npz``).

* **Rows** (:mod:`~course_lib.capstone.rows`): the runs of the registered
  methods that their ``RUNS`` name for the capstone (``RunSpec.capstone``),
  each answered by its method's ``predictor(model)``, and the baselines no
  method trains. One row per family was meta-trained on Omniglot's 30
  background alphabets and nothing else (:func:`shared_training`); the
  others are the notebooks' own checkpoints.

* **Score**: query accuracy, mean ± 95% CI over episodes. Every row
  classifies each query from the support set and that query alone (no
  transductive batch statistics), with logits restricted to the episode's N
  classes where a model has a fixed number of outputs.

One module per role: :mod:`~course_lib.capstone.test_sets` (test sets and
saved episodes), :mod:`~course_lib.capstone.rows`,
:mod:`~course_lib.capstone.running` (cells and result files),
:mod:`~course_lib.capstone.tables` (Markdown, CSV, the two figures) and
:mod:`~course_lib.capstone.cli` (``python -m course_lib.capstone``).
"""

from .test_sets import (SETTINGS, QUERIES, TEST_SETS, BASE_TEST_SETS, PERMUTATION_SEED, MNIST_HELD_OUT_FROM,
                        DESCRIPTIONS, queries_for, base_of, episode_seed, digits_to_28, pixel_permutation,
                        permute_pixels, omniglot_unseen_classes, load_test_set, EpisodeIndices, draw_episodes,
                        episodes_key, save_episodes, load_episodes)
from .rows import (FULL_OUT, SMOKE_OUT, SHARED_TRAINING_DATA, BASELINES, MissingCheckpoint, Row, build_rows,
                   pretrained_encoder, registered_runs, row_names)
from .running import evaluate_cell, run_rows, merge_part, write_part, assemble
from .tables import (columns, cell, shared_training, to_markdown, to_csv, read_csv, results_markdown, chance,
                     in_distribution, generality, plot_generality)
from .cli import main, output_folder

"""The capstone (notebook 09): every method of the course on the same episodes.

* **Test sets** (:mod:`~course_lib.capstone.test_sets`): ``omniglot``, the characters unseen by every
  shipped checkpoint; ``mnist``, the test images GPICL never saw; ``digits``, those VSML held out; and
  ``mnist-permuted``, ``digits-permuted``, their pixels shuffled by one fixed permutation.
* **Episodes**: N-way K-shot (:data:`SETTINGS`), 15 queries per class (10 at 10 shots), the same index
  lists for every row (``episodes.npz``).
* **Rows** (:mod:`~course_lib.capstone.rows`): the runs the registered methods name for the capstone,
  and the baselines no method trains; one row per family was meta-trained on Omniglot's 30 background
  alphabets alone (:func:`shared_training`).
* **Score**: query accuracy, mean ± 95% CI over episodes; each query is classified from the support set
  and itself alone (no transductive batch statistics), logits restricted to the episode's N classes.

:mod:`~course_lib.capstone.running` runs the cells and writes the files, :mod:`~course_lib.capstone.tables`
makes Markdown, CSV, the measures of generalisation (the gain over the pixel nearest neighbour, the drop
under a pixel permutation) and the two figures, :mod:`~course_lib.capstone.cli` is the command line.
"""

from .test_sets import (SETTINGS, QUERIES, TEST_SETS, PERMUTATION_SEED, MNIST_HELD_OUT_FROM,
                        DESCRIPTIONS, queries_for, base_of, episode_seed, digits_to_28, pixel_permutation,
                        permute_pixels, omniglot_unseen_classes, load_test_set, EpisodeIndices, draw_episodes,
                        episodes_key, save_episodes, load_episodes)
from .rows import (FULL_OUT, SMOKE_OUT, SHARED_TRAINING_DATA, BASELINES, MissingCheckpoint, Row, build_rows,
                   pretrained_encoder, registered_runs, row_names)
from .running import evaluate_cell, run_rows, merge_part, write_part, assemble
from .tables import (columns, cell, cell_text, shared_training, to_markdown, to_csv, read_csv, results_markdown,
                     chance, in_distribution, REFERENCE, difference, average, gain_over_pixels, permutation_drop,
                     generalisation, per_test_set_markdown, plot_heatmap, plot_generalisation)
from .cli import main, output_folder

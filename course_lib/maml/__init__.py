"""MAML and its family: second-order MAML, first-order MAML, Reptile, ANIL, Meta-SGD (notebook 04).

The method is :mod:`~course_lib.maml.algorithm`, read top to bottom; notebooks take every name from here
(``maml.inner_adapt``). Notebook 04's figures are in :mod:`course_lib.teaching.maml_figures`.
"""

from .algorithm import (VARIANTS, TASKS, BN_MODES, BATCHING, MAMLConfig, paper_settings, default_config, Params,
                        batch_norm, conv4_init, conv4_forward, mlp_init, mlp_forward, head_keys, LossFn, inner_adapt,
                        classification_loss, regression_loss, query_outputs, task_objective, meta_loss,
                        reptile_direction, MetaLearner, task_batch, sinusoid_batch, batching_for,
                        load_initialisation, first_outputs)
from .training import (meta_gradient, meta_step, trainer, Config, PAPER_BY_VARIANT, PAPER, paper,
                       META_BATCH_DIFFERS, RUNS, build, load_data, evaluate, evaluation_details, predictor,
                       capstone_row, describe, results_markdown, main)

"""MAML and its family: second-order MAML, first-order MAML, Reptile, ANIL, Meta-SGD.

For notebook 04 (optimization-based meta-learning). The learner of a task is
a few steps of gradient descent from a *learned initialisation* theta; the
meta-learner learns theta (and, for Meta-SGD, the step sizes) so that these
few steps work well on new tasks. Inner loop (task i, support set D_i^tr)
and meta-objective (query sets D_i^ts, meta-batch of T tasks)::

    phi_i^0 = theta,    phi_i^{s+1} = phi_i^s - alpha * grad_phi L(phi_i^s; D_i^tr)
    J(theta) = 1/T sum_i L(phi_i(theta); D_i^ts)

Meta-gradients, by variant:

* ``maml`` (Finn et al. 2017): the exact gradient through the inner loop,
  ``1/T sum_i (prod_s (I - alpha H_i^s)) grad L(phi_i; D_i^ts)`` with the
  Hessians ``H_i^s`` of the support loss (the inner steps' graph is kept);
* ``fomaml``: the Hessian terms dropped, ``1/T sum_i grad L(phi_i; D_i^ts)``;
* ``reptile`` (Nichol et al. 2018): no query loss; adapt on all of a task's
  data and hand the outer Adam ``theta - 1/T sum_i phi_i`` as its "gradient"
  (plain SGD of step epsilon on it is theta <- theta + epsilon (mean phi - theta));
* ``anil`` (Raghu et al. 2020): the inner loop adapts the linear head only;
* ``metasgd`` (Li et al. 2017): a learned step size per parameter entry,
  ``phi = theta - alpha (*) grad``, alpha meta-trained with theta.

Each objective is written for one task and batched over the tasks with
``torch.func.vmap``; the networks are functions of a dict of parameters, so
adapted parameters are just other dicts. MAML's Conv4 normalises with batch
statistics always (no running averages); at the query pass they come from the
query set (``bn="query"``, Finn et al.'s code: transductive), from support and
query together (``"joint"``) or from the support set only (``"support"``: each
query is classified on its own).

The package, one file per role:

* :mod:`~course_lib.maml.algorithm`: the method, top to bottom (config,
  networks, inner loop, the five objectives, the meta-learner);
* :mod:`~course_lib.maml.training`: one meta-step, training, evaluation and
  the face :mod:`course_lib.registry` reads (``python -m course_lib train maml
  --variant fomaml ...``);
* :mod:`~course_lib.maml.fast`: the per-task loop that is faster than vmap on
  CPUs, and many test episodes at once;
* :mod:`~course_lib.maml.sinusoid` (the regression test of Finn et al.) and
  :mod:`~course_lib.maml.cost` (time and memory of a meta-gradient);
* notebook 04's figures and widget are in :mod:`course_lib.teaching.maml_figures`.

Everything a notebook uses is importable from here (``maml.inner_adapt``).
"""

from .algorithm import (VARIANTS, TASKS, BN_MODES, BATCHING, MAMLConfig, paper_settings, default_config, Params,
                        batch_norm, conv4_init, conv4_forward, mlp_init, mlp_forward, head_keys, LossFn, inner_adapt,
                        classification_loss, regression_loss, query_outputs, task_objective, meta_loss,
                        reptile_direction, MetaLearner, task_batch, sinusoid_batch, batching_for,
                        load_initialisation, first_outputs)
from .training import (meta_step, trainer, Config, PAPER_BY_VARIANT, PAPER, paper, META_BATCH_DIFFERS, RUNS, build,
                       load_data, evaluate, evaluation_details, predictor, capstone_row, describe,
                       results_markdown, main)

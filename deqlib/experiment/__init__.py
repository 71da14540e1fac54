"""Does a DatasetEquity weight help on rare samples, and does a *label-free* one? A factorial CPU experiment on
real Fashion-MNIST images (issue 21; design fixed before any result: :class:`ExperimentConfig`, docs/training.md).

* **Settings**, each with a balanced test set: ``long_tail`` (rare *classes*: class sizes fall
  exponentially, imbalance ratio 100, in a random class order per seed) and one per rare *condition* of
  ``config.conditions`` (default blurred, darkened, fogged: 5% of each class's training images, half
  the test set).
* **Signals** (:mod:`~deqlib.experiment.signals`): ``oracle-rare`` (eq. 3 of the true rare flag);
  ``oracle-class`` (eq. 3 of the true classes; rare classes only); the label-free signals of
  ``config.signals``, **by registry name** (:data:`deqlib.likelihood.RARITY_SIGNALS`); and a
  ``placebo``: the oracle-rare weights permuted across samples (the same multiset, no targeting).
* **Weights** (:data:`deqlib.weights.WEIGHT_SCHEMES`, ``config.weights``): eq. 4 at (1, 5) and (0.3, 5),
  cluster-balanced with ratio caps 4 and 17, rank; every arm's weights have mean 1.
* **Baselines**: CE; where classes are rare also class-balanced (Cui et al.) and logit adjustment (Menon
  et al.).
* **Models**: ``frozen_head`` (MLP on frozen EfficientNet-Lite0 embeddings; every arm, ``config.seeds``)
  and ``small_cnn`` (from scratch on the pixels; a fractional design: the baselines and every signal with
  the weights of ``config.cnn_weights``, on ``config.cnn_seeds``).
* **Stopping**: one rule for every arm, the *unweighted* validation loss (no rare label enters training
  except through an oracle arm's weights); a learning-rate schedule on the same loss; each run records
  its epochs and whether the epoch cap bound (``hit_cap``).
* **AUC sweep**: the oracle mixed with noise to AUC 0.6 ... 0.95, weighted with one fixed scheme.
* **Statistics** (:mod:`~deqlib.experiment.statistics`): endpoints rare-sample accuracy, accuracy on the
  others and balanced accuracy; paired differences to CE by seed with paired bootstrap intervals and
  sign-flip permutation p-values, Holm-corrected per endpoint and cell; per arm the signal's AUC and
  average precision on the training pool and the realised weight ratio.
* **Resumable**: every (cell, seed) row is cached as it is trained (:data:`ROWS_FOLDER`).

An application, not a library stage: ``deqlib`` proper never imports this package (only ``deq
train-demo`` and notebook 07 do; ``tests/test_architecture.py`` checks it). One module per concern:
:mod:`~deqlib.experiment.conditions`, :mod:`~deqlib.experiment.config`, :mod:`~deqlib.experiment.data`,
:mod:`~deqlib.experiment.signals`, :mod:`~deqlib.experiment.arms`, :mod:`~deqlib.experiment.training`,
:mod:`~deqlib.experiment.runs`, :mod:`~deqlib.experiment.statistics` and :mod:`~deqlib.experiment.outputs`.
Every public name is re-exported here: ``from deqlib.experiment import reproduce``.
"""

from deqlib.experiment.arms import BASELINES, PLACEBO, Arm, arm_weights, arms_for, design, realised_ratio
from deqlib.experiment.conditions import CONDITIONS, ConditionSource
from deqlib.experiment.config import ENCODER, MODELS, RARE_CLASSES, SETTINGS, ExperimentConfig, experiment_config
from deqlib.experiment.data import (Pool, build_pools, condition_separability, draw_setting, long_tailed_indices,
                                    long_tailed_sizes)
from deqlib.experiment.outputs import (RUNS_FILE, markdown_table, output_folder, read_outputs, reproduce,
                                       write_outputs)
from deqlib.experiment.runs import (ROWS_FOLDER, RUN_KEY, count_runs, estimate_cpu_seconds, read_row_cache,
                                   run_experiment, run_task)
from deqlib.experiment.signals import (ORACLE_CLASS, ORACLE_RARE, SignalContext, class_oracle_likelihood,
                                       noisy_oracle_likelihood, oracle_likelihood, signal_likelihood, signal_quality,
                                       signal_ranking)
from deqlib.experiment.statistics import (ENDPOINTS, auc_sweep, bootstrap_interval, cost_table, holm,
                                          paired_differences, sign_flip_pvalue, summarize, summarize_ranking)
from deqlib.experiment.training import build_model, model_inputs, train_model, validation_split

__all__ = ["SETTINGS", "RARE_CLASSES", "MODELS", "CONDITIONS", "ConditionSource", "condition_separability",
           "ExperimentConfig", "experiment_config", "long_tailed_sizes", "long_tailed_indices", "Pool", "build_pools",
           "draw_setting", "SignalContext", "ORACLE_RARE", "ORACLE_CLASS", "signal_likelihood", "oracle_likelihood",
           "class_oracle_likelihood", "noisy_oracle_likelihood", "signal_quality", "signal_ranking", "Arm",
           "BASELINES", "PLACEBO", "design", "arms_for", "arm_weights", "realised_ratio", "build_model",
           "model_inputs", "validation_split", "train_model", "run_task", "run_experiment", "read_row_cache",
           "count_runs", "estimate_cpu_seconds",
           "ENDPOINTS", "bootstrap_interval", "sign_flip_pvalue", "holm", "paired_differences", "summarize",
           "summarize_ranking", "auc_sweep", "cost_table", "write_outputs", "read_outputs", "output_folder",
           "reproduce", "markdown_table", "RUNS_FILE", "RUN_KEY", "ROWS_FOLDER", "ENCODER"]

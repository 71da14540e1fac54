"""Does the DatasetEquity weight help on rare samples? A decisive CPU experiment on real Fashion-MNIST images.

Design (fixed before any result was seen; issue 13):

* **Two settings**, each with a balanced test set. ``long_tail``: rare *classes* (class sizes fall
  exponentially, imbalance ratio 100) in a *random class order per seed*, so the rare classes are not
  one appearance group by construction. ``rare_condition``: rare *appearance*: in every class 5% of the
  training images show a condition (:data:`CONDITIONS`); half the test set shows it. The condition is
  the one the encoder separates best, chosen by measurement before training
  (:func:`condition_separability`, ``benchmarks/training/``).
* **Seeds vary everything**: each seed draws its own training set (and class order), validation split,
  test subset, t-SNE and clustering, model initialisation and batch order, from fixed pools of
  pre-embedded images (:func:`build_pools`, :func:`draw_setting`). One row per (setting, model, arm,
  seed) is kept, so arms can be compared *paired by seed* against plain cross-entropy
  (:func:`paired_differences`).
* **Arms separate the signal from the weight** (:data:`ARMS`): CE; class-balanced (labels); an
  *oracle* (likelihood from the true rare flag) at the paper's (eta, gamma) = (1, 5) and (0.3, 5);
  the label-free cluster likelihood at both pairs; a *placebo* (the same likelihoods shuffled across
  samples); and every other label-free signal of :data:`SIGNALS` at (0.3, 5). A new signal (e.g. a
  consensus likelihood) is one entry in :data:`SIGNALS`. The realised weight ratio (mean weight of the
  rare training samples / of the others) is recorded for every run.
* **Two models**: ``frozen_head`` (a small MLP on frozen EfficientNet-Lite0 embeddings, the cheap
  setting) and ``small_cnn`` (a small CNN trained from scratch on the 28x28 pixels, which can learn
  features for the rare appearance). Both use a validation split and early stopping on the arm's own
  weighted validation loss (no test data, no rare labels).
* Training and t-SNE run under :func:`deqlib.threads.limit_threads` (one thread each), so a loaded
  machine cannot stall them in OpenMP waits; ``n_jobs`` runs (setting, seed) tasks in parallel processes.

An application, not a library stage: ``deqlib`` proper never imports this package (only ``deq
train-demo`` and notebook 07 do; ``tests/test_architecture.py`` checks it). One module per concern:
:mod:`~deqlib.experiment.conditions` (the rare appearances), :mod:`~deqlib.experiment.config`,
:mod:`~deqlib.experiment.data` (pools, draws, condition separability),
:mod:`~deqlib.experiment.signals` (label-free likelihoods), :mod:`~deqlib.experiment.arms`,
:mod:`~deqlib.experiment.training` (models, training loop), :mod:`~deqlib.experiment.runs` (tasks, the
whole run), :mod:`~deqlib.experiment.statistics` (paired differences) and
:mod:`~deqlib.experiment.outputs` (tables, figure, :func:`reproduce`). Every public name is
re-exported here: ``from deqlib.experiment import reproduce``.
"""

from deqlib.experiment.arms import ARMS, Arm, arm_weights, realised_ratio
from deqlib.experiment.conditions import CONDITIONS, ConditionSource
from deqlib.experiment.config import ENCODER, MODELS, SETTINGS, ExperimentConfig, experiment_config
from deqlib.experiment.data import (Pool, build_pools, condition_separability, draw_setting, long_tailed_indices,
                                    long_tailed_sizes)
from deqlib.experiment.outputs import (RUNS_FILE, markdown_table, output_folder, read_outputs, reproduce,
                                       write_outputs)
from deqlib.experiment.runs import RUN_KEY, run_experiment, run_task
from deqlib.experiment.signals import SIGNALS, SignalContext, oracle_likelihood, signal_likelihood, signal_ranking
from deqlib.experiment.statistics import (minimum_detectable_effect, paired_differences, paired_interval, summarize,
                                          summarize_ranking)
from deqlib.experiment.training import build_model, model_inputs, train_model, validation_split

__all__ = ["SETTINGS", "MODELS", "CONDITIONS", "ConditionSource", "condition_separability", "ExperimentConfig",
           "experiment_config", "long_tailed_sizes", "long_tailed_indices", "Pool", "build_pools", "draw_setting",
           "SignalContext", "SIGNALS", "signal_likelihood", "oracle_likelihood", "signal_ranking", "Arm", "ARMS",
           "arm_weights", "realised_ratio", "build_model", "model_inputs", "validation_split", "train_model",
           "run_task", "run_experiment", "paired_interval", "minimum_detectable_effect", "paired_differences",
           "summarize", "summarize_ranking", "write_outputs", "read_outputs", "output_folder", "reproduce",
           "markdown_table", "RUNS_FILE", "RUN_KEY", "ENCODER"]

"""Conditions: ways a rare appearance can differ, and a source that shows them.

The conditions live in :mod:`deqlib.conditions` (one registry for the experiment, the rarity
benchmark and ``deq rarity-check``); this module names the ten the experiment uses
(``ExperimentConfig.conditions`` picks its rare-condition settings: blurred, darkened, fogged by default).
Each maps a 28x28 RGB image to a 28x28 RGB image (:data:`CONDITIONS`);
:class:`ConditionSource` shows one on chosen samples of a parent source. Which one the
``rare_condition`` setting uses was chosen by measurement (:func:`deqlib.experiment.data.condition_separability`).
"""

from __future__ import annotations

from typing import Callable

from PIL import Image

from deqlib.conditions import ConditionSource, condition_transform

__all__ = ["CONDITIONS", "EXPERIMENT_CONDITIONS", "ConditionSource"]

#: The experiment's conditions (registered in deqlib.conditions without a strength).
EXPERIMENT_CONDITIONS = ("inverted", "rotated_90", "upside_down", "zoomed_in", "shrunk", "red_cast",
                         "striped_background", "blurred", "darkened", "fogged")

#: condition name -> deterministic image transform (28x28 RGB in, 28x28 RGB out)
CONDITIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    name: condition_transform(name) for name in EXPERIMENT_CONDITIONS}

"""Rank candidate rare conditions by the k-NN purity of the rare images in EfficientNet-Lite0 space.

Run once, before training (issue 13): `PYTHONPATH=. python benchmarks/training/rank_conditions.py`.
Writes results/condition_ranking.{csv,json} with the machine, date and load average.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _host import cpu_model  # noqa: E402

from deqlib import __version__  # noqa: E402
from deqlib._atomic import write_text_atomic  # noqa: E402
from deqlib.experiment import condition_separability  # noqa: E402


def main() -> None:
    out = Path(__file__).resolve().parent / "results"
    load_before = os.getloadavg()
    started = time.perf_counter()
    table = condition_separability(progress=False)
    seconds = time.perf_counter() - started
    write_text_atomic(out / "condition_ranking.csv", table.to_csv(index=False, float_format="%.4f"))
    record = {"what": "k-NN purity (k=10, cosine) of rare images (5% per class, 200 per class) in EfficientNet-Lite0 space",
              "ranking": table.to_dict(orient="records"), "seconds": round(seconds, 1),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "note": "shared, loaded machine: absolute times are not idle-machine times", "deqlib": __version__}
    write_text_atomic(out / "condition_ranking.json", json.dumps(record, indent=2) + "\n")
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()

"""embed_source under torchrun: 2 CPU processes, gloo, one shared cache folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deqlib import embed as E

pytestmark = pytest.mark.slow  # torchrun: two processes embedding

TORCHRUN = Path(sys.executable).with_name("torchrun")
TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch.distributed as dist

    sys.path.insert(0, {tests!r})
    from test_embed import PngSource  # the tiny ImageSource of the single-process tests

    from deqlib import embed as E

    assert E.init_distributed(), "torchrun should have set WORLD_SIZE=2"
    rank = dist.get_rank()
    result = E.embed_source(PngSource(Path({images!r})), "efficientnet-lite0", cache_dir={cache!r},
                            batch_size=2, num_workers=0, device="cpu", precision="fp32", num_threads=1,
                            progress=False, shard_size=2)
    np.savez({out!r} + f"/rank{{rank}}.npz", ids=np.asarray(result.sample_ids), vectors=result.vectors,
             failed=np.asarray(result.failures["sample_id"].tolist(), dtype=str),
             n_embedded=result.stats["n_embedded"], world_size=result.stats["world_size"])
    dist.destroy_process_group()
    """
)


def test_two_gloo_ranks_embed_disjoint_shares_and_rank0_merges(tmp_path):
    from test_embed import PngSource, make_pngs

    images = make_pngs(tmp_path / "images", n=9)
    (images / "img004.png").write_bytes(b"corrupt")  # one failure, seen by one rank only
    cache, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    script = tmp_path / "run_embed.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), images=str(images), cache=str(cache), out=str(out)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # --standalone: a local rendezvous on a free port. A session of its own, so that a hang
    # can be ended with the workers (killing torchrun alone would orphan them).
    process = subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(script)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-3000:]

    ranks = [np.load(out / f"rank{r}.npz") for r in (0, 1)]
    single = E.embed_source(PngSource(images), "efficientnet-lite0", num_workers=0, device="cpu",
                            precision="fp32", progress=False)
    for result in ranks:  # every rank returns the same merged result
        assert int(result["world_size"]) == 2 and int(result["n_embedded"]) == 8
        assert result["ids"].tolist() == single.sample_ids
        assert result["failed"].tolist() == ["img004"]
        assert np.allclose(result["vectors"], single.vectors, atol=1e-4)

    folder = E.cache_folder(cache, PngSource(images), E.get_encoder("efficientnet-lite0"), "fp32")
    shards = sorted(p.name for p in (folder / "shards").glob("*.npz"))
    assert {name[:4] for name in shards} == {"r000", "r001"}  # each rank wrote its own shards
    per_shard = [np.load(folder / "shards" / name)["sample_ids"].tolist() for name in shards]
    embedded = [s for ids in per_shard for s in ids]
    assert sorted(embedded) == sorted(single.sample_ids)  # each sample exactly once
    index = pd.read_parquet(folder / "index.parquet")
    assert index["sample_id"].tolist() == single.sample_ids
    assert pd.read_csv(folder / "failures.csv")["sample_id"].tolist() == ["img004"]

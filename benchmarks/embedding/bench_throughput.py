"""Files on disk -> embeddings: deqlib's engine against the official-style naive loop.

Naive loop (what the official stand-alone script does): for each file, ``Image.open`` +
``convert('RGB')`` (full decode), torchvision ``Resize((s, s))``, ``ToTensor()``,
``Normalize(0.5, 0.5)``, one image at a time through the same eager model under
``torch.no_grad()``, torch's default threads.

Engine: ``deqlib.embed.embed_source`` with its per-device defaults (RUN_SETTINGS), no cache,
timed from the first batch request to the last vector (model build excluded for both).
For JPEGs the engine runs twice: its default ``fast`` preprocessing (PIL draft mode) and
``reference`` (full decode), and the cosine similarity between the two sets of vectors is
reported. The naive and reference-engine vectors are compared as well (same preprocessing
arithmetic, so they should agree to float rounding).

ResNet101 and CLIP ViT-B/32 use RANDOM weights (``weights='random'``): their hubs are
unreachable offline; speed does not depend on the weights' values. For CLIP the naive loop uses
open_clip's own preprocessing (shortest-side bicubic resize + centre crop), not a squash.

Each (encoder, files) pair is measured ``--repeats`` times, naive and engine alternating, and the
medians are reported (single runs on a shared 2-core machine vary by +-20%). The results
committed from 2026-11-25 were measured when the engine's default CPU precision was bf16 autocast
on CPUs with native bf16; since issue 20 it is float32 on every CPU (``--precision bf16`` measures
bf16; see ``deqlib.embed.resolve_precision``); ``engine_vs_naive_cosine_min`` shows what bf16 costs.

    .venv/bin/python benchmarks/embedding/make_images.py --out build/bench-images --n 600
    .venv/bin/python benchmarks/embedding/bench_throughput.py --images build/bench-images
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, machine, open_folder, save_result, uptime  # noqa: E402

from deqlib.embed import embed_source, get_encoder  # noqa: E402

ENCODER_ARGS = {
    "efficientnet-lite0": {},
    "resnet101": {"weights": "random"},
    "clip:ViT-B-32": {"weights": "random"},
}


def naive_loop(files: list[Path], encoder) -> tuple[float, np.ndarray]:
    height, width = encoder.image_size
    if encoder.resize_mode == "squash":
        resize = [T.Resize((height, width))]
    else:  # open_clip's preprocessing
        resize = [T.Resize(min(height, width), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop((height, width))]
    transform = T.Compose([*resize, T.ToTensor(), T.Normalize(encoder.mean, encoder.std)])
    backbone = encoder.build("cpu").backbone.eval()  # same weights, plain NCHW eager model
    with torch.no_grad():  # warm-up (first-call allocations), not timed
        backbone(transform(Image.open(files[0]).convert("RGB"))[None])
    vectors = []
    start = time.perf_counter()
    with torch.no_grad():
        for path in files:
            image = Image.open(path).convert("RGB")
            vectors.append(backbone(transform(image)[None]).flatten(1).numpy())
    seconds = time.perf_counter() - start
    return len(files) / seconds, np.concatenate(vectors)


def engine(source, encoder, batch_size=None, num_workers=None, precision="auto") -> tuple[float, np.ndarray, dict]:
    result = embed_source(source, encoder, device="cpu", progress=False, batch_size=batch_size,
                          num_workers=num_workers, precision=precision)
    assert len(result.failures) == 0
    return result.stats["images_per_s"], result.vectors, result.stats


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=Path("build/bench-images"))
    parser.add_argument("--encoders", nargs="+", default=list(ENCODER_ARGS))
    parser.add_argument("--kinds", nargs="+", default=["kitti-png", "nuscenes-jpg"])
    parser.add_argument("--n", type=int, default=600, help="images per EfficientNet-Lite0 run")
    parser.add_argument("--n-slow", type=int, default=40, help="images per ResNet101 / CLIP run (slow on a CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating naive/engine runs; medians reported")
    parser.add_argument("--batch-size", type=int, default=None, help="override the engine's table")
    parser.add_argument("--workers", type=int, default=None, help="override the engine's table")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the engine's compute precision (auto: float32 on a CPU; pass bf16 to measure bf16 autocast)")
    parser.add_argument("--tag", default="throughput")
    args = parser.parse_args()

    rows = []
    for encoder_name in args.encoders:
        n = args.n if encoder_name == "efficientnet-lite0" else args.n_slow
        for kind in args.kinds:
            source, source_impl = open_folder(args.images / kind, limit=n)
            files = [Path(p) for p in source.metadata()["location"]]
            fast = get_encoder(encoder_name, preprocessing="fast", **ENCODER_ARGS[encoder_name])
            reference = get_encoder(encoder_name, preprocessing="reference", **ENCODER_ARGS[encoder_name])
            default = get_encoder(encoder_name, **ENCODER_ARGS[encoder_name])
            row = {"encoder": encoder_name, "kind": kind, "n_images": len(files),
                   "default_preprocessing": default.preprocessing, "source_impl": source_impl,
                   "load_before": load_average(), "uptime_before": uptime()}
            naive_runs, engine_runs = [], []
            for _ in range(args.repeats):
                naive_ips, naive_vectors = naive_loop(files, default)
                engine_ips, engine_vectors, stats = engine(source, default, args.batch_size, args.workers, args.precision)
                naive_runs.append(round(naive_ips, 1))
                engine_runs.append(round(engine_ips, 1))
            naive_ips, engine_ips = float(np.median(naive_runs)), float(np.median(engine_runs))
            row.update(naive_img_s=round(naive_ips, 1), engine_img_s=round(engine_ips, 1),
                       naive_runs=naive_runs, engine_runs=engine_runs, precision=stats.get("precision"),
                       ratio=round(engine_ips / naive_ips, 2), batch_size=stats["batch_size"],
                       num_workers=stats["num_workers"], torch_threads=stats["torch_threads"],
                       channels_last=stats["channels_last"])
            if default.preprocessing == "fast" and kind.endswith("jpg"):
                ref_ips, ref_vectors, _ = engine(source, reference, args.batch_size, args.workers, args.precision)
                sims = cosine(engine_vectors, ref_vectors)
                row.update(engine_reference_img_s=round(ref_ips, 1),
                           draft_vs_full_cosine_mean=round(float(sims.mean()), 5),
                           draft_vs_full_cosine_min=round(float(sims.min()), 5))
                same_preprocessing = ref_vectors
            else:
                same_preprocessing = engine_vectors if default.preprocessing == "reference" or kind.endswith("png") else None
            if same_preprocessing is not None:
                row["engine_vs_naive_cosine_min"] = round(float(cosine(same_preprocessing, naive_vectors).min()), 5)
            row.update(load_after=load_average(), uptime_after=uptime())
            print(row, flush=True)
            rows.append(row)

    path = save_result(args.tag, {"machine": machine(), "args": vars(args), "rows": rows})
    print(f"\nwrote {path}")
    print("\n| encoder | files | n | naive img/s | engine img/s | ratio | engine settings | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['kind']} | {r['n_images']} | {r['naive_img_s']} | {r['engine_img_s']} | "
              f"{r['ratio']}x | batch {r['batch_size']}, {r['num_workers']} workers, {r['torch_threads']} threads"
              f" | {r['load_before'][0]} -> {r['load_after'][0]} |")


if __name__ == "__main__":
    main()

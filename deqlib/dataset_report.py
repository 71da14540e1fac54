"""The steps the notebooks share after the analysis: 00 quickstart, 02 KITTI, 03 nuScenes, 04 Waymo, 05 BDD100K.

Each dataset notebook keeps its own narrative, its cell tagged ``parameters`` and its specifics
(Table 1 for KITTI, the attributes of BDD100K; the notebooks are rendered from one template,
:mod:`deqlib.notebook_templates`); the steps they all take after the analysis are the methods of
:class:`DatasetReport`, so a change to them is made once, here::

    source = open_dataset("kitti", data_root, split="train", max_images=None, seed=0)
    stages = build_stages(mode, reducer=reducer, ..., seed=seed, eta=eta, gamma=gamma)
    result = analyze(source, encoder=get_encoder(encoder), stages=stages, ...)
    report = DatasetReport(source, result, encoder=encoder, parameters=parameters, figures=output_dir)
    report.scatter_3d().show()                          # writes <dataset>_tsne_clusters.png
    report.likelihood_figures()                         # Figure 2 and the weights
    report.galleries()                                  # rarest and most common clusters
    report.explorer(max_points=None)                    # the offline HTML explorer
    stability = report.stability(stages, get_encoder(encoder), K=5)
    report.write_banks()                                # the Parquet bank, and the forks' pickle
    report.write_run_summary(label_column, stability)   # what a sweep (06) gathers

Nothing here computes a likelihood, a clustering or a stability figure: the analysis is
:func:`deqlib.pipeline.analyze`, the K runs :func:`deqlib.stability.stability_of_source`; this
module names the files (``<dataset>_<what>``, the names notebook 00 writes too), draws the
figures with :mod:`deqlib.plots` and writes the banks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from deqlib import paths

__all__ = ["data_folder", "open_dataset", "DatasetReport"]

def data_folder(kind: str) -> Path:
    """Where the dataset notebooks look for a kind's data when no root is given:
    ``data/raw/<folder>``, the folder named by the source class (``data_folder``, else the kind)."""
    from deqlib.sources import SOURCES

    return paths.raw_dir() / (getattr(SOURCES.entry(kind).factory, "data_folder", None) or SOURCES.resolve(kind))


def open_dataset(kind: str, data_root: str | Path | None = None, *, split: str | None, max_images: int | None = None,
                 seed: int = 0, **options: Any):
    """Open a dataset source the way the dataset notebooks do.

    Parameters
    ----------
    kind : str
        A source kind of :func:`deqlib.sources.open_source` (``'kitti'``, ``'nuscenes'``,
        ``'waymo'``, ``'waymo-parquet'``, ``'bdd100k'``, ...).
    data_root : path, optional
        The dataset folder; None: ``data/raw/<folder>`` (:func:`data_folder`: the source
        class's ``data_folder``, else the kind's name).
    split : str or None
        The split to read; None: every sample where the kind allows it.
    max_images : int, optional
        A seeded subsample of this size (the source's own, see :mod:`deqlib.sources`); None: all.
    seed : int, default=0
        Seed of that subsample.
    **options
        Further options of the source (e.g. nuScenes' ``version``).

    Returns
    -------
    ImageSource

    Raises
    ------
    FileNotFoundError
        The data is not there; the source's message names the layout it expects and how to get it.
    """
    from deqlib.sources import open_source

    root = Path(data_root) if data_root else data_folder(kind)
    return open_source(kind, root=root, split=split, max_images=max_images, seed=seed, **options)


@dataclass
class DatasetReport:
    """Figures, explorer, stability report, banks and run summary of one dataset's analysis.

    Parameters
    ----------
    source : ImageSource
        The images analysed (names the files: ``<source.name>_<what>``).
    result : AnalysisResult
        What :func:`deqlib.pipeline.analyze` returned for ``source``.
    encoder : str
        The encoder's name as the user gave it (part of the bank's file name).
    parameters : mapping
        The run's parameters as the notebook shows them; every figure's caption and the run
        summary record them.
    figures : path, optional
        Where figures, explorer and run summary go; None: :func:`deqlib.paths.figures_dir`.
    seed : int, optional
        Seed of the galleries' and the explorer's image choice, and the first seed of the
        stability runs; None: the analysis' seed (``result.params['seed']``, 0 if it had none).
    """

    source: Any
    result: Any
    encoder: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    figures: str | Path | None = None
    seed: int | None = None
    #: Every file written so far, by what it is (``'tsne_clusters'``, ``'bank'``, ``'consensus_bank'``, ...).
    written: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.figures = Path(self.figures) if self.figures else paths.figures_dir()
        if self.seed is None:
            self.seed = self.result.params.get("seed") or 0
        self.parameters = dict(self.parameters)

    def _save(self, figure, what: str, parameters: Mapping[str, Any] | None = None) -> Path:
        from deqlib.plots.png import save_figure

        path = save_figure(figure, self.path(f"{what}.png"), self.parameters if parameters is None else parameters)
        self.written[what] = path
        return path

    def path(self, what: str) -> Path:
        """``<figures>/<dataset>_<what>``, e.g. ``path('tsne_clusters.png')``."""
        return self.figures / f"{self.source.name}_{what}"

    # ---------------------------------------------------------------------------------- figures
    def scatter_3d(self):
        """The interactive 3-D scatter (returned: call ``.show()``); its static PNG is written to
        ``<dataset>_tsne_clusters.png``."""
        from deqlib.plots.clusters import cluster_scatter_3d, cluster_scatter_png

        self._save(cluster_scatter_png(self.result.samples), "tsne_clusters")
        return cluster_scatter_3d(self.result.samples)

    def likelihood_figures(self) -> list[Path]:
        """Figure 2 for this dataset (scaled likelihood per cluster) and the eq. 4 weights' histogram
        (with the analysis' ``eta`` and ``gamma``)."""
        from deqlib.plots.clusters import likelihood_histogram, likelihood_per_cluster, weight_distribution

        samples, params = self.result.samples, self.result.params
        return [self._save(likelihood_per_cluster(samples), "likelihood_per_cluster"),
                self._save(likelihood_histogram(samples), "likelihood_histogram"),
                self._save(weight_distribution(samples, params["eta"], params["gamma"]), "weight_distribution")]

    def galleries(self) -> list[Path]:
        """Image galleries of the rarest and of the most common clusters, and of the samples with the
        lowest and the highest likelihood (with a per-sample signal, the latter are the rare ones)."""
        from deqlib.plots.clusters import cluster_gallery, sample_gallery

        samples = self.result.samples
        return ([self._save(cluster_gallery(samples, self.source, which, seed=self.seed), f"{which}_clusters")
                 for which in ("rarest", "common")]
                + [self._save(sample_gallery(samples, self.source, which), f"{which}_samples")
                   for which in ("rarest", "common")])

    def explorer(self, max_points: int | None = None, gif: bool = False, progress: bool = True) -> str:
        """Write the offline HTML explorer (``<dataset>_explorer.html``) and, with ``gif``, a rotating
        GIF of the clusters; return the explorer's summary line(s)."""
        from deqlib.plots.explorer import explorer_summary, write_explorer

        explorer = write_explorer(self.result.samples, self.source, self.path("explorer.html"), max_points=max_points,
                                  seed=self.seed, progress=progress)
        self.written["explorer"] = self.path("explorer.html")
        text = explorer_summary(explorer)
        if gif:
            from deqlib.plots.clusters import rotating_gif

            self.written["gif"] = rotating_gif(self.result.samples, self.path("clusters.gif"))
            text += f"\n{self.written['gif']}"
        return text

    # -------------------------------------------------------------------------------- stability
    def stability(self, stages, encoder, K: int = 5, embed_options: Mapping[str, Any] | None = None,
                  progress: bool = True):
        """The stability report of the same analysis over ``K`` seeds (``seed, seed + 1, ...``).

        Runs :func:`deqlib.stability.stability_of_source` with the analysis' stages (its mode,
        noise policy, eta and gamma; the embeddings come from the cache; the t-SNE affinities are
        shared), writes the two stability figures and the consensus bank
        (``data/processed/consensus/``, in ``written['consensus_bank']``), and returns the
        :class:`~deqlib.stability.StabilityResult`; None when ``K < 2`` (nothing to compare).
        """
        if K < 2:
            return None
        from deqlib.bank import write_bank
        from deqlib.pipeline import default_bank_path
        from deqlib.plots.stability import agreement_matrix, mean_vs_spread
        from deqlib.stability import consensus_bank, stability_of_source

        params = self.result.params
        stability = stability_of_source(self.source, encoder, stages=stages, K=K,
                                        seeds=[self.seed + run for run in range(K)],
                                        embed_options=dict(embed_options or {}), progress=progress)
        caption = {**self.parameters, "stability_k": K}
        self._save(mean_vs_spread(stability.per_sample), "stability_mean_vs_spread", caption)
        self._save(agreement_matrix(stability.pairs), "stability_agreement", caption)
        consensus_path = default_bank_path(self.source.name, params["mode"], self.encoder, "consensus-mean",
                                           signal="consensus-mean", n_samples=len(stability.sample_ids),
                                           run_id=stability.run_id)
        self.written["consensus_bank"] = write_bank(consensus_path.parent / "consensus" / consensus_path.name,
                                                    consensus_bank(stability))
        return stability

    # -------------------------------------------------------------------------------- the signal
    def signal_check(self, stages, encoder, embed_options: Mapping[str, Any] | None = None):
        """The likelihood's rarity signal: its row of the rarity benchmark and how far its ranking moves here.

        Returns a one-row DataFrame: the signal, the benchmark's summary row for it
        (:func:`deqlib.recovery.benchmark_row`: mean ROC AUC over the tasks an encoder can see,
        the worst task, AP over prevalence, levels, cost; empty where the benchmark has no row) and
        :func:`deqlib.recovery.signal_stability` on this run's vectors (Spearman under row order,
        float32 and float16 rounding, one thread against two; the target is >= 0.95). Eq. 3
        (``rarity='cluster'``, reference mode) depends on the t-SNE seed instead: see
        :meth:`stability`. The vectors come from the embedding cache. Also written as
        ``<dataset>_signal_check.csv``.
        """
        import pandas as pd

        from deqlib._atomic import write_text_atomic
        from deqlib.pipeline import embeddings_from_source
        from deqlib.recovery import benchmark_row, signal_stability

        if stages.rarity is None:
            raise ValueError("this run's likelihood is eq. 3 (rarity='cluster'), whose ranking depends on the t-SNE "
                             "seed: its stability is DatasetReport.stability(...); signal_check is for the other signals")
        _, vectors, _, _ = embeddings_from_source(self.source, encoder, dict(embed_options or {}), False,
                                                  mode=stages.mode)
        stability = signal_stability(vectors, stages.rarity)
        row = benchmark_row(stability["signal"]) or {}
        keep = ("mean AUC (ceiling >= 0.9)", "tasks >= 0.9", "min task AUC", "AP / prevalence", "levels (median)",
                "cost x analysis (median)", "date", "n")
        table = pd.DataFrame([{**{f"benchmark: {k}": row.get(k) for k in keep},
                               **{f"Spearman: {k}": stability[k] for k in
                                  ("row_order", "rounding_fp32", "rounding_fp16", "threads")}}],
                             index=pd.Index([stability["signal"]], name="signal"))
        self.written["signal_check"] = write_text_atomic(self.path("signal_check.csv"), table.to_csv())
        return table

    # ------------------------------------------------------------------------------------ banks
    def write_banks(self, missing: str = "error", official: bool | None = None) -> dict[str, Path]:
        """Write the likelihood bank (``data/processed/<dataset>_<encoder>_<mode>_<policy>_n<N>_<run id>.parquet``,
        one file per run: :meth:`AnalysisResult.default_path`) and the official forks' pickle.

        ``missing``: what the pickle gives images that failed to decode (``'error'``, ``'rarest'``
        or ``'median'``, see :meth:`AnalysisResult.export_official`). ``official``: None (default)
        writes the pickle for a dataset an official fork reads, under the fork's file name
        (:data:`deqlib.bank.OFFICIAL_BANK_FILENAMES`) in a folder named like the bank
        (``data/processed/<bank name>/kitti_training_cluster_info.pkl``: the name is the fork's, the
        folder the run's); True writes it for any dataset (``<bank name>.pkl`` beside the bank where no
        fork names it); False never. ``data/raw`` is never modified: copy
        or link the pickle into your dataset root yourself. Returns ``{'bank': path}`` plus
        ``'official': path`` when a pickle was written.
        """
        from deqlib.bank import OFFICIAL_BANK_FILENAMES

        bank = self.result.write(self.result.default_path(self.encoder))
        written = {"bank": bank}
        fork_name = OFFICIAL_BANK_FILENAMES.get(self.source.name)
        if official or (official is None and fork_name):
            # the fork's file name is fixed, so each run's pickle goes to a folder named like its bank
            written["official"] = self.result.export_official(
                bank.with_suffix("") / fork_name if fork_name else bank.with_suffix(".pkl"), missing=missing)
        self.written.update(written)
        return written

    def write_run_summary(self, label_column: str | None = None, stability=None) -> Path:
        """``<dataset>_run_summary.json``: the numbers a parameter sweep (``06_parameter_sweeps``,
        ``deq sweep``) gathers from each run (:func:`deqlib.sweep.write_run_summary`)."""
        from deqlib.sweep import write_run_summary

        self.written["run_summary"] = write_run_summary(
            self.result.samples, self.parameters, self.path("run_summary.json"), label_column=label_column,
            faithfulness=self.result.params.get("faithfulness"),
            stability=stability.summary if stability is not None else None)
        return self.written["run_summary"]

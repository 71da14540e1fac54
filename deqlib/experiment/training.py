"""Models and training: a frozen-embedding MLP head and a small CNN, trained with per-sample weights;
one stopping rule for every arm (the unweighted validation loss: no rare label enters it)."""

from __future__ import annotations

import numpy as np

from deqlib.experiment.config import MODELS, ExperimentConfig
from deqlib.experiment.data import Pool

__all__ = ["build_model", "model_inputs", "validation_split", "train_model"]


def build_model(model: str, n_features: int, config: ExperimentConfig):
    """``frozen_head``: Linear-ReLU-Linear on embeddings; ``small_cnn``: three 3x3 conv blocks
    (8, 16, 32 channels, batch norm) on 28x28x3 pixels."""
    import torch.nn as nn

    if model == "frozen_head":
        return nn.Sequential(nn.Linear(n_features, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 10))
    if model == "small_cnn":
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),      # 14x14
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),    # 7x7
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(32, 10))
    raise ValueError(f"model must be one of {MODELS}, got {model!r}")


def model_inputs(model: str, pool: Pool, index: np.ndarray):
    """The float32 tensor a model trains on: embeddings, or pixels scaled to [-1, 1] (N, 3, 28, 28)."""
    import torch

    if model == "frozen_head":
        return torch.as_tensor(pool.X[index], dtype=torch.float32)
    pixels = torch.as_tensor(pool.pixels[index]).permute(0, 3, 1, 2).float()
    return (pixels / 127.5 - 1.0).contiguous()


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (fit, validation) positions; at least one of each."""
    order = np.random.default_rng([seed, 11]).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def train_model(model: str, X, y: np.ndarray, weights: np.ndarray, config: ExperimentConfig, seed: int,
                logit_offset: np.ndarray | None = None):
    """Train ``model`` with per-sample ``weights`` on a fit split, stopped by one criterion for every arm.

    Stopping reads the **unweighted** cross-entropy on the validation split, so no arm's weights (hence no
    rare label, not even the oracle's) enter it; the same loss drives ``ReduceLROnPlateau``
    (``lr_patience``, ``lr_factor``) and early stopping (``patience`` epochs without a better loss); the
    best epoch is restored. The weights of the validation samples are never read. ``logit_offset``
    (one value per class) is added to the logits in the training loss only: logit adjustment (Menon et
    al., ICLR 2021); predictions and the stopping loss use the plain logits.

    Returns ``(net, epochs, hit_cap)``: ``hit_cap`` is True when ``max_epochs`` ended the run before
    the stopping rule did (the cap bound: the run may be under-trained).
    """
    import torch

    torch.manual_seed(seed)
    fit, val = validation_split(len(y), config.validation_fraction, seed)
    y_t, w_t = torch.as_tensor(y, dtype=torch.long), torch.as_tensor(weights, dtype=torch.float32)
    offset = None if logit_offset is None else torch.as_tensor(logit_offset, dtype=torch.float32)
    net = build_model(model, X.shape[1], config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.lr_factor,
                                                           patience=config.lr_patience)
    generator = torch.Generator().manual_seed(seed)
    fit_t, val_t = torch.as_tensor(fit), torch.as_tensor(val)
    best, best_state, stale, epochs, stopped = np.inf, None, 0, 0, False
    for epochs in range(1, config.max_epochs[model] + 1):
        net.train()
        order = fit_t[torch.randperm(len(fit_t), generator=generator)]
        for start in range(0, len(order), config.batch_size[model]):
            batch = order[start:start + config.batch_size[model]]
            if len(batch) < 2 and model == "small_cnn":
                continue  # batch norm needs two samples
            logits = net(X[batch])
            if offset is not None:
                logits = logits + offset
            losses = torch.nn.functional.cross_entropy(logits, y_t[batch], reduction="none")
            loss = (losses * w_t[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.inference_mode():
            val_loss = float(torch.nn.functional.cross_entropy(net(X[val_t]), y_t[val_t]))  # unweighted
        scheduler.step(val_loss)
        if val_loss < best - 1e-6:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                stopped = True
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, epochs, not stopped

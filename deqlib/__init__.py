"""deqlib: the DatasetEquity method as a thin, tested library.

Data flow, one module per stage::

    sources -> embed -> reduce -> cluster -> likelihood -> weights -> plots
                                     \\-> bank (Parquet / official pickle)

``pipeline`` chains the stages with on-disk caches; ``training`` brings the
weights into a PyTorch loop; ``paper`` holds the published numbers.

The "Generalized Focal Loss" here is the weight of Shrivastava et al.
(DatasetEquity, ICCV 2023 workshop), W(p, eta, gamma) = (eta + (1 - p)**gamma) / (eta + 1),
NOT the Generalized Focal Loss of Li et al. (NeurIPS 2020) shipped in mmdetection.
"""

__version__ = "0.1.0"

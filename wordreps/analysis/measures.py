"""The one table of measures that compare two layers' representations of the same word occurrences.

Each :class:`Measure` names its equation's module and the all-pairs engine that computes it for every layer
pair of two models (the engine computes its sibling measures from the same products at once, e.g. linear and
debiased CKA). Everything downstream (the experiment scripts' ``--metric`` choices, the comparison runner's
bootstrap and permutations, the JSON/CSV/PNG writers, the reproduction runner and its summary page) reads
this table, so a new measure is one function in its module and one row here.

The table is import-light (no torch): engines are imported when a comparison runs.

An engine is ``engine(layers1, layers2, names, *, rows1=None, rows2=None, symmetric=False, device="cpu",
precision="mixed", chunk_rows=16384, progress=None, **options) -> {name: (L1, L2) array}`` where a layer is
a zero-argument callable returning an (n, d) float32 array (a memory map is fine), ``rows1``/``rows2``
select and pair rows (a bootstrap resample on both sides; a permutation of model 2's rows), ``symmetric``
says both sides are the same layers and rows, and ``progress`` is called once per layer of model 1.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

from wordreps.common.errors import UserError


@dataclass(frozen=True)
class Measure:
    name: str                       # the --metric value, the result file's name
    title: str                      # for plots and tables
    reference: str                  # the paper whose equation it is
    engine: str                     # "module:function" of its all-pairs engine
    # An n x n measure runs on one seeded sample of rows; this names the option holding the sample size.
    sample_option: str | None = None
    # The plug-in measure whose value the bootstrap world has (an unbiased estimator's resamples centre on the
    # plug-in value, not on the estimate): intervals are re-centred by point[name] - point[bootstrap_world].
    bootstrap_world: str | None = None
    # Options of the engine this measure uses (recorded in the results' settings).
    options: tuple[str, ...] = ()
    # Why a cell has no value when neither layer is constant (the results' note for that cell).
    undefined_when: str = "a layer has no variance left in the rows used"

    def engine_function(self) -> Callable:
        module, _, function = self.engine.partition(":")
        return getattr(importlib.import_module(module), function)

    def group(self) -> tuple[str, str | None]:
        """Measures of one group are computed by one engine call on the same rows."""
        return self.engine, self.sample_option


_CKA = "wordreps.analysis.cka:all_pairs"
_CCA = "wordreps.analysis.cca:all_pairs"
_CCA_UNDEFINED = ("the rows do not outnumber the layers' ranks enough for canonical correlations (every "
                  "correlation would be 1); use more rows or fewer dimensions")
MEASURES: tuple[Measure, ...] = (
    Measure("linear", "linear CKA", "Kornblith et al. (2019), ICML", _CKA),
    Measure("debiased", "debiased linear CKA", "Nguyen et al. (2021), ICLR; HSIC_1 of Song et al. (2012)", _CKA,
            bootstrap_world="linear",
            undefined_when="the debiased estimate of a layer's similarity with itself is not positive at this n"),
    Measure("rbf", "RBF CKA", "Kornblith et al. (2019), ICML", _CKA, sample_option="rbf_sample",
            options=("rbf_sigma",)),
    Measure("cca", "mean CCA", "Hotelling (1936); principal angles, Bjorck & Golub (1973)", _CCA,
            options=("cca_rank_tol",), undefined_when=_CCA_UNDEFINED),
    Measure("svcca", "SVCCA", "Raghu et al. (2017), NeurIPS", _CCA, options=("svcca_variance", "cca_rank_tol"),
            undefined_when=_CCA_UNDEFINED),
    Measure("pwcca", "PWCCA", "Morcos et al. (2018), NeurIPS", _CCA, options=("cca_rank_tol",),
            undefined_when=_CCA_UNDEFINED),
    Measure("procrustes", "Procrustes similarity", "Ding et al. (2021), NeurIPS",
            "wordreps.analysis.procrustes:all_pairs"),
    # the engine samples rows itself when called directly; given the comparison's sample, it takes all of it
    Measure("rsa", "RSA (Spearman, correlation RDMs)", "Kriegeskorte et al. (2008), Front. Syst. Neurosci.",
            "wordreps.analysis.rsa:all_pairs", sample_option="rsa_sample", options=("rsa_sample",),
            undefined_when="a sampled row is constant in a layer, so its correlation distances are undefined"),
)
NAMES: tuple[str, ...] = tuple(m.name for m in MEASURES)
CKA_NAMES: tuple[str, ...] = tuple(m.name for m in MEASURES if m.engine == _CKA)   # experiment_CKA.py's
PRECISIONS = ("mixed", "float64")
# experiment_similarity.py's default: the "same picture under several measures"
DEFAULT_SIMILARITY: tuple[str, ...] = ("linear", "debiased", "svcca", "pwcca", "procrustes", "rsa")
# every engine option a measure may take, with its default (the scripts' flags of the same names)
OPTION_DEFAULTS: dict[str, float | int] = {"rbf_sample": 5000, "rbf_sigma": 0.8, "svcca_variance": 0.99,
                                           "cca_rank_tol": 1e-5, "rsa_sample": 2000}


def measure(name: str) -> Measure:
    for m in MEASURES:
        if m.name == name:
            return m
    raise UserError(f"unknown measure {name!r}; choose from {', '.join(NAMES)}")


def groups(names: Sequence[str]) -> list[list[str]]:
    """The measures to compute for ``names``, grouped by engine call, in table order. A measure whose bootstrap
    world is another measure brings that one into its group (the engine computes both from the same products)."""
    wanted = {measure(n).name for n in names}
    wanted |= {measure(n).bootstrap_world for n in names if measure(n).bootstrap_world}
    out: dict[tuple[str, str | None], list[str]] = {}
    for m in MEASURES:
        if m.name in wanted:
            out.setdefault(m.group(), []).append(m.name)
    return list(out.values())


def all_pairs(layers1, layers2, names: Sequence[str], **kwargs) -> dict:
    """Every layer pair under every measure in ``names`` (one engine call per group; rows as the caller gives)."""
    out: dict = {}
    for group in groups(names):
        out.update(measure(group[0]).engine_function()(layers1, layers2, group, **kwargs))
    return {n: out[n] for n in names}

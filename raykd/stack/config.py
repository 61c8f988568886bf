"""The stacked teacher's section of a teacher config (`model.kind: stack`; raykd.stack)."""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from raykd.config import (
    Bool,
    Int,
    NonNegativeInt,
    NonNegativeNumber,
    PositiveInt,
    PositiveNumber,
    Str,
    config,
    rule,
    rules,
)

# The base learners a stack can use (raykd.stack.learners); all but `lexical` and `text` come once per
# representation. The default leaves `pair` out: for one question per task it repeats `embedding`.
Group = Literal["lexical", "text", "embedding", "neighbours", "prompt", "pair"]
GROUPS: tuple[str, ...] = ("lexical", "text", "embedding", "neighbours", "prompt")


@config
class RepresentationConfig:
    """A frozen backbone whose mean-pooled states describe each text (raykd.stack.representations).

    backbone: a model zoo name (`minilm`, `mpnet`, `gemma-3-270m`, `smollm2-135m`) or a local model folder.
    layer: the hidden layer pooled (0: the embeddings; None: the last); a middle layer of a decoder LLM often
      describes a text better than its last, and costs only the layers up to it.
    """

    backbone: Str = "minilm"
    layer: NonNegativeInt | None = None
    max_length: PositiveInt = 128
    batch_size: PositiveInt = 32
    cpu_bf16: Bool = True  # on a CPU with native bf16; part of the cache key (bf16 and fp32 states differ)


@config
class StackConfig:
    """Base learners fitted out of fold per task, and a meta-model on their outputs (raykd.stack.learners).

    representations: the frozen backbones (each adds an `embedding` learner and a `neighbours` one).
    groups: the base learner groups to consider; with `select`, forward selection keeps learners while one
      raises the cross-validated score by more than `min_gain` (each learner's score is in the result).
    meta_c: the meta-model's inverse regularisation during the selection; the final one is the value of
      `meta_c_grid` (and `meta_c`) with the best cross-validated score for the learners kept.
    folds: k of the k-fold cross-fitting (folds grouped by text, so a duplicate never sees itself).
    cache_dir: where representations are kept by text digest and backbone checksum (default
      `$RAYKD_HOME/representations`, else `~/.cache/raykd/representations`).
    """

    representations: list[RepresentationConfig] = field(
        default_factory=lambda: [RepresentationConfig(backbone="minilm")])
    groups: list[Group] = field(default_factory=lambda: list(GROUPS))
    select: Bool = True
    # On the 10 ASAP-SAS sets one learner rarely adds 0.002 alone (a representation's embedding and neighbour
    # learners add more together): 0.002 stopped at 3 of 14 learners, CV 0.732; no threshold kept 6, CV 0.738.
    min_gain: NonNegativeNumber = 0.0
    folds: PositiveInt = 5
    # what folds are grouped by: identical texts (always together), or questions, for a teacher that must
    # score questions it never saw (its cross-validated score then measures that)
    group_folds_by: Literal["text", "question"] = "text"
    neighbours: PositiveInt = 5
    lexical_c: PositiveNumber = 10.0  # inverse regularisation of the word + character n-gram model
    embedding_c: PositiveNumber = 0.05  # of the per-representation logistic models (standardised states)
    meta_c: PositiveNumber = 0.1  # of the meta-model (multinomial logistic regression, standardised inputs)
    meta_c_grid: list[PositiveNumber] = field(default_factory=lambda: [0.03, 0.3])
    cache_dir: Str | None = None
    seed: Int = 0
    # Ray: representations on Ray Data (an actor pool), per-task fits as Ray tasks.
    embed_concurrency: PositiveInt = 1
    embed_cpus: PositiveNumber = 1.0
    fit_cpus: PositiveNumber = 1.0

    @rules
    def _rules(self) -> None:
        if self.folds < 2:
            raise rule("folds", "cross-fitting needs at least 2 folds")
        if not self.groups:
            raise rule("groups", "name at least one base learner group")
        if any(g not in ("lexical", "text") for g in self.groups) and not self.representations:
            raise rule("representations", "the embedding, neighbours, prompt and pair groups need at least one "
                                          "representation")
        keys = [(r.backbone, r.layer) for r in self.representations]
        if len(set(keys)) != len(keys):
            raise rule("representations", "the same backbone and layer are named twice")

"""The host-side population: agents' attributes with their labels, and contact networks.

A :class:`Population` is plain numpy on the host. It is what a population directory
(see :mod:`jaxsim.population_io`) or the synthetic generator (:mod:`jaxsim.nyc.synthesis`)
produces, and what a model turns into device arrays once, at build time.

Categorical attributes are integer codes ``[N]`` plus, where the population has a
``mapping.json`` entry, the list of labels (code = index into the list). Code order is a
property of one population file, not of the model: always resolve labels to codes through
:meth:`Population.code` / :meth:`Population.table_by_label`, never by hard-coding a code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from jaxsim.errors import InputError, LabelError


class PopulationError(InputError):
    """A population (directory, file or in-memory arrays) is malformed.

    The message names the file, the line or column, and the offending value.
    """


@dataclass(frozen=True)
class EdgeList:
    """An undirected contact network: each edge once, as ``u < v``.

    Attributes:
        u, v: int32 ``[E]`` endpoints with ``u < v``; no self-loops, no duplicates.
        weight: optional float32 ``[E]`` contact weight (e.g. hours/day relative to a
            reference contact); ``None`` means every edge has weight 1.
    """

    u: np.ndarray
    v: np.ndarray
    weight: np.ndarray | None = None

    @property
    def num_edges(self) -> int:
        return int(self.u.shape[0])

    @staticmethod
    def from_pairs(
        src: np.ndarray, dst: np.ndarray, weight: np.ndarray | None = None
    ) -> "EdgeList":
        """Canonicalise arbitrary pairs: drop self-loops and duplicates, orient ``u < v``.

        Duplicates (in either orientation) keep the first occurrence's weight.
        """
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        if src.shape != dst.shape or src.ndim != 1:
            raise PopulationError(
                f"edge endpoint arrays must be 1-D and of equal length, got {src.shape} and {dst.shape}"
            )
        key = src * (np.int64(1) << 32) + dst
        if src.size and np.all(src < dst) and np.all(key[1:] > key[:-1]):
            # Already canonical (as save_population writes them): skip the sort.
            w = None if weight is None else np.asarray(weight, dtype=np.float32)
            return EdgeList(src.astype(np.int32), dst.astype(np.int32), w)
        keep = src != dst
        u = np.minimum(src, dst)[keep]
        v = np.maximum(src, dst)[keep]
        w = None if weight is None else np.asarray(weight, dtype=np.float32)[keep]
        key = u * (np.int64(1) << 32) + v
        _, first = np.unique(key, return_index=True)  # sorted by (u, v)
        u, v = u[first], v[first]
        if w is not None:
            w = w[first]
        return EdgeList(u.astype(np.int32), v.astype(np.int32), w)


@dataclass
class Population:
    """Agents ``0..N-1`` with categorical attributes and undirected contact networks.

    Attributes:
        attributes: ``{name: int32 [N]}`` integer-coded columns (e.g. ``age``, ``area``).
        labels: ``{name: [label, ...]}`` from ``mapping.json``; code ``c`` of attribute
            ``name`` means ``labels[name][c]``. Attributes without labels stay plain codes.
        strings: ``{name: object [N]}`` free-text columns such as ``soc_code``.
        networks: ``{layer_name: EdgeList}`` contact layers (e.g. ``household``,
            ``community``, or ``0``..``6`` for one network per day of week).
        initial_states: ``{name: [N] array}`` per-agent initial values that a model may
            start from (e.g. ``"disease_stage"``, read from the field's
            ``disease_stages.csv``; the COVID model uses it when present).
        metadata: free-form provenance (source directory, NTAs, generator settings).
        user_ids: optional int64 ``[N]``: the id agent ``i`` had where the population came
            from, when it has been reordered (see :mod:`jaxsim.locality`); ``None`` means
            agent ``i`` is the user's agent ``i``.
    """

    attributes: dict[str, np.ndarray]
    labels: dict[str, list[str]] = field(default_factory=dict)
    strings: dict[str, np.ndarray] = field(default_factory=dict)
    networks: dict[str, EdgeList] = field(default_factory=dict)
    initial_states: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    user_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = {name: int(np.shape(col)[0]) for name, col in self.attributes.items()}
        sizes.update({name: int(np.shape(col)[0]) for name, col in self.strings.items()})
        if not sizes:
            raise PopulationError("a population needs at least one attribute column")
        n = next(iter(sizes.values()))
        bad = {k: s for k, s in sizes.items() if s != n}
        if bad:
            raise PopulationError(f"attribute columns disagree in length: {sizes}")
        for name, labels in self.labels.items():
            if name not in self.attributes:
                continue  # a mapping for a column this population does not have is harmless
            codes = self.attributes[name]
            if codes.size and (codes.min() < 0 or codes.max() >= len(labels)):
                bad_code = int(codes.max() if codes.max() >= len(labels) else codes.min())
                raise PopulationError(
                    f"attribute {name!r}: code {bad_code} is outside its mapping "
                    f"({len(labels)} labels: {labels})"
                )
        for layer, edges in self.networks.items():
            if edges.num_edges and (
                min(edges.u.min(), edges.v.min()) < 0 or max(edges.u.max(), edges.v.max()) >= n
            ):
                raise PopulationError(
                    f"network {layer!r}: an edge endpoint is outside [0, {n})"
                )
        for name, values in self.initial_states.items():
            if np.shape(values)[:1] != (n,):
                raise PopulationError(
                    f"initial state {name!r} has {np.shape(values)[0] if np.ndim(values) else 0} entries for {n} agents"
                )

    # ------------------------------------------------------------------ size
    @property
    def size(self) -> int:
        """Number of agents ``N``."""
        return int(np.shape(next(iter({**self.attributes, **self.strings}.values())))[0])

    @property
    def num_contacts(self) -> int:
        """Number of undirected edges over all layers."""
        return sum(e.num_edges for e in self.networks.values())

    # ---------------------------------------------------------------- labels
    def _require(self, attribute: str) -> np.ndarray:
        if attribute not in self.attributes:
            raise LabelError(
                f"population has no attribute {attribute!r}; it has {sorted(self.attributes)}"
            )
        return self.attributes[attribute]

    def category_labels(self, attribute: str) -> list[str]:
        """Labels of ``attribute`` in code order; unlabeled columns get ``"0".."K-1"``."""
        codes = self._require(attribute)
        if attribute in self.labels:
            return list(self.labels[attribute])
        k = int(codes.max()) + 1 if codes.size else 0
        return [str(c) for c in range(k)]

    def num_categories(self, attribute: str) -> int:
        return len(self.category_labels(attribute))

    def code(self, attribute: str, label: str) -> int:
        """The integer code of ``label`` in this population's ``attribute``."""
        labels = self.category_labels(attribute)
        try:
            return labels.index(str(label))
        except ValueError:
            raise LabelError(
                f"attribute {attribute!r} has no label {label!r}; its labels are {labels}"
            ) from None

    def table_by_label(
        self,
        attribute: str,
        values: Mapping[str, float],
        default: float | None = None,
        dtype=np.float32,
    ) -> np.ndarray:
        """Turn ``{label: value}`` into a per-code table ``[K]`` in this population's order.

        Every label of the attribute must be covered by ``values`` unless ``default`` is
        given. Labels in ``values`` that the population lacks are an error (a typo would
        otherwise silently fall back to the default).
        """
        labels = self.category_labels(attribute)
        unknown = sorted(set(map(str, values)) - set(labels))
        if unknown:
            raise LabelError(
                f"attribute {attribute!r}: unknown labels {unknown}; its labels are {labels}"
            )
        missing = [lab for lab in labels if lab not in values]
        if missing and default is None:
            raise LabelError(
                f"attribute {attribute!r}: no value given for labels {missing}"
            )
        return np.array([values.get(lab, default) for lab in labels], dtype=dtype)

    def labelled(self, attribute: str) -> np.ndarray:
        """Per-agent labels of ``attribute`` as a string array ``[N]`` (host only)."""
        return np.asarray(self.category_labels(attribute), dtype=object)[self._require(attribute)]

    def counts_by_label(self, attribute: str) -> dict[str, int]:
        labels = self.category_labels(attribute)
        counts = np.bincount(self._require(attribute), minlength=len(labels))
        return {lab: int(c) for lab, c in zip(labels, counts)}

    def summary(self) -> dict:
        """A JSON-friendly description (sizes, attribute label counts, layers)."""
        out = {
            "agents": self.size,
            "attributes": sorted(self.attributes),
            "string_columns": sorted(self.strings),
            "networks": {name: e.num_edges for name, e in self.networks.items()},
            "undirected_edges": self.num_contacts,
            "mean_contacts_per_agent": (2.0 * self.num_contacts / self.size) if self.size else 0.0,
        }
        for attr in ("age", "gender"):
            if attr in self.attributes:
                out[f"{attr}_counts"] = self.counts_by_label(attr)
        if self.metadata:
            out["metadata"] = self.metadata
        return out


def relabel(population: Population, attribute: str, new_order: Sequence[str]) -> Population:
    """Return a copy whose ``attribute`` mapping lists labels in ``new_order``.

    Agents keep their labels; only the codes change. Useful to check that a model is
    driven by labels rather than code order.
    """
    old = population.category_labels(attribute)
    if sorted(old) != sorted(new_order):
        raise LabelError(f"new order {list(new_order)} is not a permutation of {old}")
    remap = np.array([list(new_order).index(lab) for lab in old], dtype=np.int32)
    attributes = dict(population.attributes)
    attributes[attribute] = remap[population.attributes[attribute]]
    labels = dict(population.labels)
    labels[attribute] = list(new_order)
    return Population(
        attributes=attributes,
        labels=labels,
        strings=dict(population.strings),
        networks=dict(population.networks),
        initial_states=dict(population.initial_states),
        metadata=dict(population.metadata),
        user_ids=population.user_ids,
    )

"""Metric families written straight to the Prometheus text format 0.0.4, or handed to
prometheus_client as Metric objects: the same samples either way.

A scrape of a 10,000-agent tree is ~190,000 samples. prometheus_client spends ~7 us on each
(a Sample per add_metric, then generate_latest escapes, sorts and formats every one: 1.3 s);
here a sample is one string concatenation (~0.1 us), because what repeats is done once: a
label value is escaped once per render, a value formatted once per distinct value, and a state
set's lines come from one template per current state. With a RenderCache, a family whose
data did not change since the previous render is not written again at all.

The text is what generate_latest writes: HELP and TYPE once per family (counters named with
their _total), label names in sorted order, label values escaped (backslash, double quote,
newline), values in Go's float format, histograms as _bucket{le=...} (cumulative, ending with
+Inf), _count and _sum.

    families = [PathValues(GAUGE, "x_depth", "Queued.", ["a", "b"], [0, 3])]
    render(families)                     # bytes
    [f.to_metric() for f in families]    # for a prometheus_client collector
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

__all__ = [
    "COUNTER",
    "GAUGE",
    "Family",
    "Histograms",
    "LabelledValues",
    "PathValues",
    "RenderCache",
    "StateSets",
    "escape_label_value",
    "per_path",
    "render",
    "render_parts",
]

GAUGE: Final = "gauge"
COUNTER: Final = "counter"
HISTOGRAM: Final = "histogram"


def escape_label_value(value: str) -> str:
    """A label value as it goes between double quotes in the text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Escaped(dict[str, str]):
    """Escaped label values, each computed once (one per render: it never outgrows a scrape)."""

    def __missing__(self, value: str) -> str:
        escaped = self[value] = escape_label_value(value)
        return escaped


class _PathLabels(dict[str, str]):
    """`{path="<escaped path>"} ` for each path, computed once per render."""

    def __missing__(self, path: str) -> str:
        text = self[path] = f'{{path="{escape_label_value(path)}"}} '
        return text


class _GoFloats(dict[float, str]):
    """floatToGoString(value), remembered for the values that repeat (0, 1, small counts);
    bounded, so a stream of distinct floats (latency sums) cannot grow it."""

    LIMIT = 4096

    def __missing__(self, value: float) -> str:
        text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
        if len(self) < self.LIMIT and text != "-0.0":  # -0.0 == 0.0: it must not stand for 0
            self[value] = text
        return text


_GO = _GoFloats()


class _Render:
    """What one render shares between its families."""

    def __init__(self) -> None:
        self.escaped = _Escaped()
        self.path_labels = _PathLabels()


class Family(abc.ABC):
    """One metric family: `name` as exposed (a counter's ends in _total), `kind` gauge |
    counter | histogram, `labels` its label names (written in sorted order). `optional`: a
    family a scrape leaves out while it has no samples (others are written with none)."""

    def __init__(
        self, kind: str, name: str, doc: str, labels: Sequence[str], *, optional: bool = False
    ) -> None:
        self.kind = kind
        self.name = name
        self.doc = doc
        self.labels = tuple(labels)
        self.optional = optional

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many series it has."""

    @abc.abstractmethod
    def data(self) -> object:
        """What its text is written from (equal data, equal text)."""

    def header(self) -> str:
        doc = self.doc.replace("\\", "\\\\").replace("\n", "\\n")
        return f"# HELP {self.name} {doc}\n# TYPE {self.name} {self.kind}\n"

    @abc.abstractmethod
    def lines(self, render: _Render) -> str:
        """The sample lines, each ending in a newline."""

    @abc.abstractmethod
    def add_samples(self, metric: Metric) -> None:
        """Add the samples to `metric` (made by to_metric)."""

    def to_metric(self) -> Metric:
        metric: Metric
        if self.kind == COUNTER:
            metric = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        elif self.kind == HISTOGRAM:
            metric = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        else:
            metric = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        self.add_samples(metric)
        return metric


class PathValues(Family):
    """One sample per path, labelled by the path only: values[i] belongs to paths[i]."""

    def __init__(
        self,
        kind: str,
        name: str,
        doc: str,
        paths: Sequence[str],
        values: Sequence[float],
        *,
        optional: bool = False,
    ) -> None:
        super().__init__(kind, name, doc, ("path",), optional=optional)
        self.paths = paths
        self.values = values

    def __len__(self) -> int:
        return len(self.paths)

    def data(self) -> object:
        return (self.paths, self.values)

    def lines(self, render: _Render) -> str:
        name, labels, go = self.name, render.path_labels, _GO
        return "".join(
            [name + labels[p] + go[v] + "\n" for p, v in zip(self.paths, self.values, strict=True)]
        )

    def add_samples(self, metric: Metric) -> None:
        add = metric.add_metric  # type: ignore[attr-defined]
        for path, value in zip(self.paths, self.values, strict=True):
            add([path], float(value))


def _label_writer(labels: tuple[str, ...], escaped: _Escaped) -> Callable[[Sequence[str]], str]:
    """A function from label values (in `labels` order) to `{a="...",b="..."}`, label names
    in sorted order; the common one- and two-label cases without a per-row loop."""
    order = sorted(range(len(labels)), key=labels.__getitem__)
    keys = [f'{labels[i]}="' for i in order]
    if not order:
        return lambda values: ""
    if len(order) == 1:
        (i,), (k,) = order, keys
        return lambda values: f'{{{k}{escaped[values[i]]}"}}'
    if len(order) == 2:
        (i, j), (k, m) = order, keys
        return lambda values: f'{{{k}{escaped[values[i]]}",{m}{escaped[values[j]]}"}}'
    pairs = list(zip(keys, order, strict=True))
    return lambda values: "{" + ",".join([f'{k}{escaped[values[i]]}"' for k, i in pairs]) + "}"


class LabelledValues(Family):
    """Samples with any labels: rows of (label values in `labels` order, value)."""

    def __init__(
        self,
        kind: str,
        name: str,
        doc: str,
        labels: Sequence[str],
        rows: Iterable[tuple[Sequence[str], float]],
        *,
        optional: bool = False,
    ) -> None:
        super().__init__(kind, name, doc, labels, optional=optional)
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def data(self) -> object:
        return self.rows

    def lines(self, render: _Render) -> str:
        name, go, write = self.name, _GO, _label_writer(self.labels, render.escaped)
        return "".join([name + write(values) + " " + go[v] + "\n" for values, v in self.rows])

    def add_samples(self, metric: Metric) -> None:
        add = metric.add_metric  # type: ignore[attr-defined]
        for values, value in self.rows:
            add(list(values), float(value))


class StateSets(Family):
    """A state set per path: one sample per state it can be in, 1 for the current one (a
    current state outside those comes last). Labels: path, state."""

    def __init__(
        self,
        name: str,
        doc: str,
        rows: Iterable[tuple[str, tuple[str, ...], str]],
        *,
        optional: bool = False,
    ) -> None:
        super().__init__(GAUGE, name, doc, ("path", "state"), optional=optional)
        self.rows = list(rows)  # (path, the states it can be in, the current one)
        self._templates: dict[tuple[tuple[str, ...], str], list[str]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def data(self) -> object:
        return self.rows

    @staticmethod
    def states_of(known: tuple[str, ...], current: str) -> list[tuple[str, float]]:
        """(state, value) for each sample of one path."""
        states = known if current in known else (*known, current)
        return [(s, 1.0 if s == current else 0.0) for s in states]

    def _template(self, known: tuple[str, ...], current: str) -> list[str]:
        """The lines of one path in this state, cut where its escaped path goes: joining
        them with it writes them."""
        found = self._templates.get((known, current))
        if found is None:
            head = f'{self.name}{{path="'
            tails = [
                f'",state="{escape_label_value(s)}"}} {_GO[v]}\n'
                for s, v in self.states_of(known, current)
            ]
            found = [head, *[t + head for t in tails[:-1]], tails[-1]]
            self._templates[(known, current)] = found
        return found

    def lines(self, render: _Render) -> str:
        esc, template = render.escaped, self._template
        return "".join([esc[path].join(template(k, c)) for path, k, c in self.rows])

    def add_samples(self, metric: Metric) -> None:
        add = metric.add_metric  # type: ignore[attr-defined]
        for path, known, current in self.rows:
            for state, value in self.states_of(known, current):
                add([path, state], value)


class Histograms(Family):
    """Histograms: rows of (label values, cumulative buckets [(le, count)] ending with +Inf,
    sum). Each writes its buckets, then _count (the +Inf bucket) and _sum."""

    def __init__(
        self,
        name: str,
        doc: str,
        labels: Sequence[str],
        rows: Iterable[tuple[Sequence[str], list[tuple[str, float]], float]],
        *,
        optional: bool = False,
    ) -> None:
        super().__init__(HISTOGRAM, name, doc, labels, optional=optional)
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def data(self) -> object:
        return self.rows

    def lines(self, render: _Render) -> str:
        name, go, esc = self.name, _GO, render.escaped
        keys = sorted(self.labels)
        position = {label: i for i, label in enumerate(self.labels)}
        le_at = sum(k < "le" for k in keys)  # a bucket's labels are sorted with le among them
        out = []
        for values, buckets, total in self.rows:
            pairs = [f'{k}="{esc[values[position[k]]]}"' for k in keys]
            pre = f"{name}_bucket{{" + "".join(p + "," for p in pairs[:le_at]) + 'le="'
            post = '"' + "".join("," + p for p in pairs[le_at:]) + "} "
            out.extend([pre + le + post + go[n] + "\n" for le, n in buckets])
            labels = "{" + ",".join(pairs) + "}" if pairs else ""
            out.append(f"{name}_count{labels} {go[buckets[-1][1]]}\n")
            out.append(f"{name}_sum{labels} {go[total]}\n")
        return "".join(out)

    def add_samples(self, metric: Metric) -> None:
        add = metric.add_metric  # type: ignore[attr-defined]
        for values, buckets, total in self.rows:
            add(list(values), buckets, total)


class RenderCache:
    """Each family's bytes from the previous render, with the data they were written from: a
    family whose data has not changed (most of them, in a tree of idle agents) is not written
    again. Holds plain values only."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[object, bytes]] = {}

    def get(self, family: Family) -> tuple[object, bytes | None]:
        data = family.data()
        before = self._made.get(family.name)
        return data, before[1] if before is not None and before[0] == data else None

    def keep(self, made: dict[str, tuple[object, bytes]]) -> None:
        self._made = {**self._made, **made}


def render_parts(families: Iterable[Family], cache: RenderCache | None = None) -> list[bytes]:
    """Each family in the text format 0.0.4, UTF-8 (never failing on a lone surrogate);
    optional ones only if they have samples. With a cache, unchanged families are reused."""
    shared = _Render()
    made: dict[str, tuple[object, bytes]] = {}
    for family in families:
        if family.optional and not len(family):
            continue
        data, text = cache.get(family) if cache is not None else (None, None)
        if text is None:
            lines = family.header() + family.lines(shared)
            text = lines.encode("utf-8", "backslashreplace")
        made[family.name] = (data, text)
    if cache is not None:
        cache.keep(made)
    return [text for _, text in made.values()]


def render(families: Iterable[Family], cache: RenderCache | None = None) -> bytes:
    """The families in the text format 0.0.4 (see render_parts)."""
    return b"".join(render_parts(families, cache))


def per_path(
    kind: str, name: str, doc: str, actors: Sequence[Any], values: Sequence[float | None]
) -> PathValues:
    """A family of one sample per actor that has a value (None: it has none)."""
    have = [(a.path, v) for a, v in zip(actors, values, strict=True) if v is not None]
    return PathValues(kind, name, doc, [p for p, _ in have], [v for _, v in have], optional=True)

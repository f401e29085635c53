"""The system's store (start(tree, store=...)): opened from a URL or taken as given, checked
against the tree before anything starts, wired to the dead-letter office, and closed with
the system when the system opened it."""

from __future__ import annotations

from .._events import emit
from .._spec import ChildSpec, Supervisor, iter_specs
from ..delivery._dead_letters import DeadLetter, DeadLetterOffice
from ..store import Store, StoreError, open_store

__all__ = ["SystemStore"]


class SystemStore:
    """store: None without one; owned: opened here from a URL (so closed here too)."""

    def __init__(self, tree: Supervisor, store: Store | str | None) -> None:
        if store is None:
            needing = [
                path
                for path, spec in iter_specs(tree)
                if isinstance(spec, ChildSpec) and (spec.durable or spec.persist)
            ]
            if needing:
                msg = (
                    f"{', '.join(needing)} keep state or messages (persist=True or "
                    "durable=True): start(tree, store='sqlite:///path/to/state.db')"
                )
                raise ValueError(msg)
            self.store: Store | None = None
            self.owned = False
            return
        self.owned = isinstance(store, str)
        self.store = open_store(store)

    def attach(self, office: DeadLetterOffice) -> None:
        """Durable agents' dead letters go to the store; an earlier run's come back."""
        store = self.store
        if store is None:
            return
        kept = []
        for stored in store.dead_letters(limit=office.keep):
            try:
                kept.append(DeadLetter.model_validate_json(stored.payload))
            except ValueError:  # written by a version that kept them otherwise: skipped
                continue
        office.restore(kept)
        office.sink = self._keep

    def _keep(self, letter: DeadLetter) -> None:
        assert self.store is not None
        try:
            data = letter.model_dump_json().encode("utf-8")
            self.store.add_dead_letter(letter.path, data, letter.reason, wait=False)
        except StoreError as exc:  # the store is closing: the letter is still in memory
            emit("dead_letter_not_stored", level="warning", path=letter.path,
                 reason=str(exc), trace_id=letter.trace_id)  # fmt: skip

    def close(self) -> None:
        if self.owned and self.store is not None:
            self.store.close()

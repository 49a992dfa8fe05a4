"""``@message`` classes: the fast ``__init__`` builds what the dataclass's own would."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import dvms.node.assembly  # noqa: F401 - registers every message of the node services
import sim.world  # noqa: F401 - and of the simulated hypervisor
from peeractor import message
from peeractor.message import registered_tags


def _reference(cls: type) -> type:
    """The same class made by dataclasses alone (its generated ``__init__``)."""
    fields = {f.name: (f.type, f) for f in dataclasses.fields(cls)}
    return dataclasses.make_dataclass(
        cls.__name__ + "Reference",
        [(name, typ, dataclasses.field(default=f.default)) for name, (typ, f) in fields.items()],
        frozen=True,
        slots=True,
    )


@pytest.mark.parametrize("tag", sorted(registered_tags()))
def test_every_message_takes_the_dataclass_parameters(tag: str) -> None:
    cls = registered_tags()[tag]
    ours = inspect.signature(cls).parameters
    theirs = inspect.signature(_reference(cls)).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


@message("test.init.Probe")
class Probe:
    sender: str
    seq: int
    peers: tuple[str, ...] = ()


def test_fields_defaults_equality_and_frozenness() -> None:
    assert Probe.__init__.__qualname__ == "Probe.__init__"
    p = Probe("a", 1)
    assert (p.sender, p.seq, p.peers) == ("a", 1, ())
    assert p == Probe(sender="a", seq=1, peers=()) and hash(p) == hash(Probe("a", 1))
    assert dataclasses.replace(p, seq=2) == Probe("a", 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seq = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'seq'"):
        Probe("a")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Probe("a", 1, (), 4)  # type: ignore[call-arg]


@message("test.init.Checked")
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")


def test_a_class_with_post_init_keeps_the_dataclass_init() -> None:
    assert Checked(1).n == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)

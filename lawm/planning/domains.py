"""The labelled domains planning knows: each one's offline protocol, its budget and its simulator.

Any other domain of `world_model.domains` (a user's own videos with `action_*` ground-truth
columns) gets the generic offline protocol with the DROID protocol's budget, and no closed loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from lawm.worlds.arm import ArmSim
from lawm.worlds.nav import NavSim
from lawm.worlds.sim import Sim


@dataclass(frozen=True)
class LabelledDomain:
    protocol: str  # its offline protocol's metrics: a key of lawm.planning.protocols.METRICS
    budget: str  # the `planning` field with the protocol's CEM budget and episodes (a ProtocolConfig)
    sim: type[Sim] | None = None  # its closed-loop simulator (lawm.worlds.make_sim); None: offline only

    @property
    def actions(self) -> tuple[str, ...] | None:
        """Its ground truth's action columns, in order (None: whatever `action_*` columns it has)."""
        return None if self.sim is None else self.sim.action_columns


REGISTRY = {"arm": LabelledDomain("droid", "droid", ArmSim), "nav": LabelledDomain("recon", "recon", NavSim)}
GENERIC = LabelledDomain("generic", "droid")


def register(domain: str, entry: LabelledDomain) -> None:
    """Make planning treat `domain` as `entry` says (its protocol, budget and simulator) instead of
    with the generic protocol. Refuses to replace a registered domain. (The protocol's name is
    checked when planning uses it: this registry is read by the report too, which must not depend
    on the protocols' code.)"""
    if domain in REGISTRY:
        raise ValueError(f"domain {domain!r} is already registered: {REGISTRY[domain]}")
    REGISTRY[domain] = entry


def labelled(domain: str) -> LabelledDomain:
    """What planning knows of `domain`: its registered entry, or the generic protocol alone."""
    return REGISTRY.get(domain, GENERIC)

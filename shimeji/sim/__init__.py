"""The simulator: run a graph of services in memory, in virtual time, from a seed.

``SimCluster`` is the entry point; ``cluster.trace`` records what happened.
"""

from shimeji.sim.cluster import SimCluster
from shimeji.sim.entropy import UncontrolledEffectWarning
from shimeji.sim.replica import SimReplica
from shimeji.sim.scheduler import SimulationLivelock, SimulationStalled
from shimeji.sim.trace import Trace, TraceEvent

__all__ = [
    "SimCluster",
    "SimReplica",
    "SimulationLivelock",
    "SimulationStalled",
    "Trace",
    "TraceEvent",
    "UncontrolledEffectWarning",
]

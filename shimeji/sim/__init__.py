"""The simulator: run a graph of services in memory, in virtual time, from a seed.

``SimCluster`` is the entry point; ``cluster.trace`` records what happened.
"""

from shimeji.sim.cluster import Replica, SimCluster
from shimeji.sim.scheduler import SimulationStalled
from shimeji.sim.trace import Trace, TraceEvent

__all__ = ["Replica", "SimCluster", "SimulationStalled", "Trace", "TraceEvent"]

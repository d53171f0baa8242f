"""Layers that let code written for another framework run on shimeji.

``shimeji.compat.nameko`` makes ``import nameko.rpc`` (and nameko's other
public modules) resolve to shimeji's equivalents, opt-in.
"""

__all__: list[str] = []

"""shimeji: nameko-style RPC microservices, run and tested on a deterministic
in-memory simulation of the whole RPC path.

Public modules: ``shimeji.rpc``, ``shimeji.exceptions``, ``shimeji.contextdata``,
``shimeji.extensions``, ``shimeji.config``, ``shimeji.sim``, ``shimeji.testing``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

"""Runnable examples: the specification's services on the simulator."""

"""The calculator service of the specification, on shimeji.

    shimeji sim examples/calculator.py
"""

from shimeji.exceptions import BadRequest
from shimeji.rpc import rpc


class CalculatorService:
    name = "calculator"

    @rpc
    def add(self, a, b):
        return a + b

    @rpc
    def multiply(self, a, b):
        return a * b

    @rpc(expected_exceptions=(ValueError, BadRequest))
    def divide(self, a, b):
        if b == 0:
            raise ValueError("Division by zero")
        return a / b


def scenario(cluster):
    """Three calculators; a few calls, one of which fails on purpose."""
    cluster.add_service(CalculatorService, replicas=3)
    calculator = cluster.rpc.calculator
    results = {
        "add(2, 3)": calculator.add(2, 3),
        "multiply(6, 7)": calculator.multiply(6, 7),
        "divide(10, 4)": calculator.divide(10, 4),
    }
    try:
        calculator.divide(1, 0)
    except Exception as exc:  # RemoteError: ValueError Division by zero
        results["divide(1, 0)"] = f"{type(exc).__name__}: {exc}"
    return results

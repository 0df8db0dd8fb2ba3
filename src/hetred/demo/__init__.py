"""``hetred demo``: simulate the demo night and reduce it with every stage that exists, then
compare each product with the simulator's truth.

This package (like :mod:`hetred.sim`) may read the truth tree; reduction code never does.
"""
from hetred.demo.result import DemoResult
from hetred.demo.runner import run_demo

__all__ = ["DemoResult", "run_demo"]

"""bouncewise: read mail bounces and SMTP replies, and say per recipient what failed and why."""

from bouncewise.classify import Failure, UnreadableInput, classify, explain, iter_classify
from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.judge import Verdict
from bouncewise.result import Result

__all__ = ["classify", "iter_classify", "explain", "Result", "Verdict", "Failure",
           "UnreadableInput", "Limits", "DEFAULT_LIMITS"]
__version__ = "0.1.0"

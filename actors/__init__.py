"""What users subclass and what runs inside one agent. Knows nothing about trees or hosts."""

from ._agent import Agent, ContextNotAttachedError
from ._context import AgentContext
from ._result import ExecutionResult, ExecutionStatus, FailureReason, ResultError
from ._rule_based import Rule, RuleBasedAgent, message_text

__all__ = [
    "Agent",
    "AgentContext",
    "ContextNotAttachedError",
    "ExecutionResult",
    "ExecutionStatus",
    "FailureReason",
    "ResultError",
    "Rule",
    "RuleBasedAgent",
    "message_text",
]

"""What users subclass and what runs inside one agent. Knows nothing about trees or hosts."""

from ._agent import Agent, ContextNotAttachedError
from ._budget import Budget, BudgetLedger
from ._context import AgentContext
from ._llm_agent import LLMAgent
from ._result import ExecutionResult, ExecutionStatus, FailureReason, ResultError
from ._rule_based import Rule, RuleBasedAgent, message_text
from ._states import AgentState
from ._tools import Tool, ToolGuard
from .llm import ChaosLLM, OpenAICompatibleLLM, ScriptedLLM

__all__ = [
    "Agent",
    "AgentContext",
    "AgentState",
    "Budget",
    "BudgetLedger",
    "ChaosLLM",
    "ContextNotAttachedError",
    "ExecutionResult",
    "ExecutionStatus",
    "FailureReason",
    "LLMAgent",
    "OpenAICompatibleLLM",
    "ResultError",
    "Rule",
    "RuleBasedAgent",
    "ScriptedLLM",
    "Tool",
    "ToolGuard",
    "message_text",
]

"""Agents used by the tests: small, deterministic, controlled with threading.Events."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from actors import Agent, ExecutionResult, ExecutionStatus, Rule, RuleBasedAgent

_instances = itertools.count(1)


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class Crashy(Agent):
    """Crashes on "boom"; otherwise answers (message, instance number)."""

    def __init__(self) -> None:
        self.instance = next(_instances)

    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom!")
        return (message, self.instance)


class AlwaysCrash(Agent):
    def handle(self, message: Any) -> Any:
        raise ValueError(f"cannot handle {message!r}")


class Counter(Agent):
    """Keeps state; a restart starts it from zero again."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom!")
        self.count += 1
        return self.count


class Gate:
    """entered: set when a handler starts waiting; release(): lets every waiter go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.calls = 0

    def wait_entered(self, timeout: float = 5.0) -> None:
        assert self.entered.wait(timeout), "handler never started"

    def release(self) -> None:
        self.opened.set()


class Blocking(Agent):
    """Blocks on its gate for messages starting with "block"; "block-crash" then crashes;
    anything else is echoed with the instance number."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.instance = next(_instances)

    def handle(self, message: Any) -> Any:
        if isinstance(message, str) and message.startswith("block"):
            self.gate.calls += 1
            self.gate.entered.set()
            self.gate.opened.wait(30)
            if message == "block-crash":
                raise RuntimeError("crashed after blocking")
        return (message, self.instance)


class Lifecycle(Agent):
    """Records on_start / on_stop / handle into a shared journal."""

    def __init__(self, journal: list[str], name: str, fail_start: bool = False) -> None:
        self.journal = journal
        self.name = name
        self.fail_start = fail_start

    def on_start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start:{self.name}")

    def on_stop(self) -> None:
        self.journal.append(f"stop:{self.name}")

    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom!")
        if message == "quit":
            self.context.stop()
        return self.name


class BadOutput(Agent):
    def handle(self, message: Any) -> Any:
        return ExecutionResult(status=ExecutionStatus.INVALID_OUTPUT, error="not a valid answer")


class Human(RuleBasedAgent):
    rules = (Rule(keywords=("refund",), reply={"action": "route_to_human", "queue": "billing"}),)
    default = {"action": "route_to_human", "reason": "agent unavailable"}


class Asker(Agent):
    """Asks the path in the message: {"ask": path, "then": message}."""

    def handle(self, message: Any) -> Any:
        if isinstance(message, dict) and "ask" in message:
            result = self.context.ask(
                message["ask"], message.get("then"), timeout=message.get("timeout")
            )
            return {
                "status": result.status.value,
                "data": result.data,
                "error": result.error,
                "trace": self.context.trace_id,
            }
        return {"echo": message, "trace": self.context.trace_id}


class Switch:
    """A shared flag the tests flip to make an agent fail or succeed."""

    def __init__(self, failing: bool = True) -> None:
        self.failing = failing
        self.calls = 0


class Flaky(Agent):
    """INVALID_OUTPUT while its switch is failing (no crash), else answers."""

    def __init__(self, switch: Switch, gate: Gate | None = None) -> None:
        self.switch = switch
        self.gate = gate

    def handle(self, message: Any) -> Any:
        self.switch.calls += 1
        if self.gate is not None and message == "block":
            self.gate.entered.set()
            self.gate.opened.wait(30)
        if self.switch.failing:
            return ExecutionResult(
                status=ExecutionStatus.INVALID_OUTPUT, error="model returned junk"
            )
        return f"primary:{message}"


class CrashUntil(Agent):
    """Crashes while its switch is failing."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch

    def handle(self, message: Any) -> Any:
        self.switch.calls += 1
        if self.switch.failing:
            raise RuntimeError(f"crash #{self.switch.calls}")
        return f"primary:{message}"


class Misbehaving(Agent):
    """crash -> raises; hang -> blocks on the gate; invalid -> INVALID_OUTPUT; slow -> waits a
    little on the gate; anything else is echoed."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def handle(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("misbehaving crash")
        if message == "hang":
            self.gate.entered.set()
            self.gate.opened.wait(30)
            return "woke up"
        if message == "invalid":
            return ExecutionResult(status=ExecutionStatus.INVALID_OUTPUT, error="junk")
        if message == "slow":
            self.gate.opened.wait(0.01)
            return "slow answer"
        return message

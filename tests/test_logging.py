"""Structured logs: trace ids across agents, message context, redaction, renderers, OTel."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from actors import Agent
from actors._redaction import add_sensitive_fields, redact, redact_text
from supervisor import ChildSpec, Supervisor, configure_logging, start
from supervisor.testing import capture_events
from tests.agents import AlwaysCrash

log = structlog.get_logger("tests.agents")


class Hop(Agent):
    """Logs, then asks the next path in its kwargs (if any)."""

    def __init__(self, next_path: str | None = None) -> None:
        self.next_path = next_path

    def handle(self, message: Any) -> Any:
        log.info("hop_working", payload=message)
        if self.next_path:
            return self.context.ask(self.next_path, message).unwrap()
        return f"done:{message['ticket']}"


def chain_tree() -> Supervisor:
    return Supervisor(
        "root",
        children=[
            ChildSpec("a", Hop, kwargs={"next_path": "root/b"}),
            ChildSpec("b", Hop, kwargs={"next_path": "root/c"}),
            ChildSpec("c", Hop),
        ],
    )


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(json=True, level="debug", stream=stream)
    yield stream
    structlog.reset_defaults()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_trace_id_follows_one_request_across_three_agents(json_logs):
    with start(chain_tree()) as system:
        result = system.ask("root/a", {"ticket": 7}, timeout=5.0, trace_id="req-42")
        assert result.data == "done:7"
        other = system.ask("root/a", {"ticket": 8}, timeout=5.0)
    events = [e for e in lines(json_logs) if e["event"] == "hop_working"]
    mine = [e for e in events if e["trace_id"] == "req-42"]
    assert [e["path"] for e in mine] == ["root/a", "root/b", "root/c"]
    assert [e["agent_id"] for e in mine] == ["a", "b", "c"]
    assert len({e["message_id"] for e in mine}) == 3
    assert all(e["level"] == "info" and "timestamp" in e for e in mine)
    theirs = [e for e in events if e["trace_id"] == other.trace_id]
    assert [e["path"] for e in theirs] == ["root/a", "root/b", "root/c"]
    assert other.trace_id != "req-42"


def test_a_trace_bound_by_the_caller_is_picked_up(json_logs):
    with start(chain_tree()) as system:
        structlog.contextvars.bind_contextvars(trace_id="from-web-request")
        try:
            assert system.ask("root/c", {"ticket": 1}, timeout=5.0).trace_id == "from-web-request"
        finally:
            structlog.contextvars.clear_contextvars()


def test_lifecycle_events_carry_the_standard_keys_in_json(json_logs):
    with start(Supervisor("root", children=[ChildSpec("w", AlwaysCrash)])) as system:
        system.ask("root/w", "x", timeout=5.0)
    by_name = {e["event"]: e for e in lines(json_logs)}
    crashed = by_name["agent_crashed"]
    for key in ("supervisor", "child", "path", "agent_id", "reason", "trace_id", "message_id"):
        assert key in crashed
    assert crashed["path"] == "root/w"
    assert by_name["child_exited"]["reason"].startswith("ValueError")


def test_secrets_in_payloads_headers_and_exceptions_never_reach_the_logs(json_logs):
    class Leaky(Agent):
        def handle(self, message: Any) -> Any:
            log.info(
                "calling_api",
                headers={"Authorization": "Bearer abc.def.ghi-123456"},
                payload=message,
            )
            raise RuntimeError(
                "upstream refused key sk-live-ABCDEFGHIJKLMNOPQRSTUVWX password=hunter22"
            )

    add_sensitive_fields(["customer_ssn"])
    with start(Supervisor("root", children=[ChildSpec("leaky", Leaky)])) as system:
        result = system.ask(
            "root/leaky",
            {
                "user": "ann",
                "api_key": "k-123",
                "customer_ssn": "078-05-1120",
                "nested": [{"password": "swordfish"}],
            },
            timeout=5.0,
        )
    text = json_logs.getvalue()
    for secret in (
        "abc.def.ghi-123456",
        "sk-live-ABCDEFGHIJKLMNOPQRSTUVWX",
        "hunter22",
        "k-123",
        "078-05-1120",
        "swordfish",
    ):
        assert secret not in text
        assert secret not in (result.error or "")
    call = next(e for e in lines(json_logs) if e["event"] == "calling_api")
    assert call["headers"]["Authorization"] == "***"
    assert call["payload"]["user"] == "ann"
    assert call["payload"]["nested"][0]["password"] == "***"


def test_exception_tracebacks_are_redacted_too(json_logs):
    try:
        raise ValueError("token=supersecretvalue in request")
    except ValueError:
        log.exception("boom")
    assert "supersecretvalue" not in json_logs.getvalue()
    assert "token=***" in json_logs.getvalue()


def test_redact_walks_nested_structures_and_models():
    from pydantic import BaseModel

    class Creds(BaseModel):
        client_secret: str
        name: str

    value = {
        "list": [("Bearer abcdefghijkl", {"x-api-key": "zzz"})],
        "model": Creds(client_secret="s3", name="n"),
    }
    out = redact(value)
    assert out["list"][0][0] == "Bearer ***"
    assert out["list"][0][1]["x-api-key"] == "***"
    assert out["model"] == {"client_secret": "***", "name": "n"}
    assert redact_text("nothing to see") == "nothing to see"


def test_events_seen_by_sinks_are_redacted():
    with capture_events() as events:
        from actors._events import emit

        emit("custom", payload={"password": "pw", "ok": 1})
    assert events.matching("custom")[0]["payload"] == {"password": "***", "ok": 1}


def test_console_renderer_for_development():
    stream = io.StringIO()
    configure_logging(json=False, stream=stream)
    try:
        with start(chain_tree()) as system:
            system.ask("root/c", {"ticket": 3}, timeout=5.0, trace_id="t-console")
        out = stream.getvalue()
        assert "hop_working" in out
        assert "trace_id=t-console" in out
        assert not out.lstrip().startswith("{")
    finally:
        structlog.reset_defaults()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def test_opentelemetry_span_per_message_parented_across_agents():
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        start(chain_tree(), tracing=provider) as system,
        tracer.start_as_current_span("request") as root,
    ):
        system.ask("root/a", {"ticket": 9}, timeout=5.0)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    a, b, c = (spans[f"hivekeeper.handle root/{x}"] for x in "abc")
    assert a.parent.span_id == root.get_span_context().span_id
    assert b.parent.span_id == a.context.span_id
    assert c.parent.span_id == b.context.span_id
    assert len({s.context.trace_id for s in (a, b, c)}) == 1
    assert c.attributes["hivekeeper.path"] == "root/c"


def test_without_any_configuration_events_go_to_stderr_at_info_redacted(capsys):
    """A library logs to stderr at info: not structlog's default (stdout, every level)."""
    from actors._events import emit

    structlog.reset_defaults()  # as in an application that never configured logging
    assert not structlog.is_configured()
    emit("agent_state_changed", level="debug", path="root/w", old="idle", new="busy")
    emit("probe_started", path="root/w", reason="DB_PASSWORD=hunter22", api_key="k-1")
    out, err = capsys.readouterr()
    assert out == ""
    assert "agent_state_changed" not in err
    assert "probe_started" in err
    assert "path=root/w" in err
    assert "hunter22" not in err
    assert "k-1" not in err
    assert not structlog.is_configured()  # nothing was configured on the application's behalf


def test_an_applications_own_structlog_setup_is_kept_and_still_redacted():
    """Under a chain without hivekeeper's processor, events are still masked: fields, bound
    contextvars and tracebacks (rendered by emit itself)."""
    from actors._events import emit

    stream = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    structlog.contextvars.bind_contextvars(authorization="Bearer ctxsecret123456")
    try:
        try:
            raise RuntimeError("upstream said token=tbsecret42")
        except RuntimeError:
            emit(
                "http_handler_failed",
                level="error",
                exc_info=True,
                logger_name="hivekeeper.http",
                path="/health",
                headers=[("Authorization", "Bearer hdrsecret123456")],
            )
    finally:
        structlog.contextvars.clear_contextvars()
    text = stream.getvalue()
    event = json.loads(text)
    assert event["event"] == "http_handler_failed"
    assert event["path"] == "/health"
    assert "RuntimeError" in event["exception"]
    assert "token=***" in event["exception"]
    for secret in ("ctxsecret123456", "tbsecret42", "hdrsecret123456"):
        assert secret not in text


def test_a_filtered_event_nobody_listens_to_costs_no_redaction(monkeypatch, capsys):
    import actors._events as events_module

    calls: list[Any] = []
    monkeypatch.setattr(events_module, "redact", lambda value: calls.append(value) or value)
    events_module.emit("agent_state_changed", level="debug", old="idle", new="busy")
    assert calls == []  # the suite's configuration filters below critical
    structlog.reset_defaults()
    events_module.emit("agent_state_changed", level="debug", old="idle", new="busy")
    assert calls == []  # hivekeeper's own default: info and above
    events_module.emit("tree_started", path="root")
    assert len(calls) == 1
    assert "tree_started" in capsys.readouterr().err

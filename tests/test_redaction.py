"""Redaction: the text scrubber's forms, the walker's shapes, and that it never raises."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from actors._redaction import MASK, add_sensitive_fields, redact, redact_text

# (text, secret that must go, what must stay)
TEXT_CASES = [
    ("DB_PASSWORD=hunter22 retrying", "hunter22", "DB_PASSWORD="),
    ("GITHUB_TOKEN=abc123def456 in env", "abc123def456", "GITHUB_TOKEN="),
    ("MY_SECRET=opensesame", "opensesame", "MY_SECRET="),
    ("x_api_key=k3y-value-1", "k3y-value-1", "x_api_key="),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "aws_"),
    ("clientSecret: s3cr3tvalue", "s3cr3tvalue", "clientSecret"),
    ("could not connect to postgres://app:pg-pass-9@db.local:5432/app", "pg-pass-9", "app:"),
    ("redis://:r3dispw@cache:6379/0", "r3dispw", "redis://"),
    ("key id AKIAIOSFODNN7EXAMPLE rejected", "AKIAIOSFODNN7EXAMPLE", "key id"),
    (
        "push failed with ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "16C7e42F292c6912E7710c838",
        "push",
    ),
    ("gho_16C7e42F292c6912E7710c838347Ae178B4a expired", "16C7e42F292c6912E7710c8", "expired"),
    ("token github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "11ABCDEFG0123456789", ""),
    ("slack said xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "AbCdEfGhIjKl", "slack"),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", "XXXXXXXXXXXXXXXX", "hooks"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
        "jwt",
    ),
    ("sent Basic dXNlcjpwYXNzd29yZA== to upstream", "dXNlcjpwYXNzd29yZA", "Basic"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Authorization: Basic"),
    ("Authorization: Bearer abc.def.ghi-123456", "abc.def.ghi-123456", "Bearer"),
    ('password="my secret pw" rejected', "my secret pw", 'password="***"'),
    ("{'password': 'two words'}", "two words", "'password': '***'"),
    ('{"api_key": "sk-abcdefghijklmnopqrstuvwx"}', "abcdefghijklmnop", '"api_key": "***"'),
    ('body={\\"password\\": \\"p w\\"}', "p w", "password"),
    ("run --db-password hunter2 now", "hunter2", "--db-password"),
    ("mysql --password hunter2XYZ -h db", "hunter2XYZ", "--password"),
    ("cli --token abc123def now", "abc123def", "--token"),
    ("cli --api-key k1k1k1k1", "k1k1k1k1", "--api-key"),
    ("cli --secret=s3cr3tval", "s3cr3tval", "--secret="),
    ("Cookie: sid=abc123; theme=dark", "abc123", "Cookie:"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789 leaked", "abcdefghijklmnopqrstuvwxyz0123", "leaked"),
    ("hf_abcdefghijklmnopqrstuvwxyzABCDEF used", "abcdefghijklmnopqrstuvwxyzAB", "used"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890abcdefghij", ""),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "stripe"),
    ("openai sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX", "ABCDEFGHIJKLMNOPQRSTUVWX", "openai"),
]

PEM = """loaded -----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi
Z1BjP5CE8Wv2wY
-----END RSA PRIVATE KEY----- then failed"""


@pytest.mark.parametrize(("text", "secret", "kept"), TEXT_CASES)
def test_redact_text_masks_the_common_forms(text: str, secret: str, kept: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out
    assert kept in out


def test_pem_private_keys_are_masked_whole_and_the_rest_kept() -> None:
    out = redact_text(PEM)
    assert "MIIEpAIBAAKCAQEA" not in out
    assert "Z1BjP5CE8Wv2wY" not in out
    assert out.startswith("loaded -----BEGIN RSA PRIVATE KEY-----***")
    assert out.endswith("then failed")
    cut = redact_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert "MIIEvQIBADANBgkq" not in cut


@pytest.mark.parametrize(
    "text",
    [
        "nothing to see",
        "max_tokens=256 prompt_tokens: 12",
        "a basic question about the weather",
        "task-1234567890abcdefghijkl finished",
        "KeyError: 'order_id'",
        "ValueError: upstream returned an empty completion",
        "https://api.example.com/v1/chat (timeout)",
        "root/support/triage",
    ],
)
def test_plain_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_configured_fields_are_masked_inside_free_text() -> None:
    add_sensitive_fields(["customer_ssn_t1"])
    for text in (
        "customer_ssn_t1=999-99-9999 rejected",
        "customer_ssn_t1: 999-99-9999",
        '{"customer_ssn_t1": "999-99-9999"}',
        "bad record {'customer_ssn_t1': '999-99-9999'}",
    ):
        assert "999-99-9999" not in redact_text(text), text
    assert redact(ValueError("customer_ssn_t1=999-99-9999")) == "ValueError: customer_ssn_t1=***"


def test_a_configured_field_reaches_neither_result_error_nor_crash_events() -> None:
    from actors import Agent
    from supervisor import ChildSpec, Supervisor, start
    from supervisor.testing import capture_events

    class Leaks(Agent):
        def handle(self, message: Any) -> Any:
            msg = "lookup failed for customer_ssn_t2=999-99-9999"
            raise RuntimeError(msg)

    add_sensitive_fields(["customer_ssn_t2"])
    with (
        capture_events() as events,
        start(Supervisor("root", children=[ChildSpec("w", Leaks)])) as system,
    ):
        result = system.ask("root/w", "x", timeout=5.0)
    assert result.error is not None
    assert "customer_ssn_t2=***" in result.error
    assert "999-99-9999" not in result.error
    crashes = events.matching("agent_crashed")
    assert crashes
    assert "999-99-9999" not in json.dumps(list(events), default=str)


def test_deeper_than_the_limit_is_masked_not_passed_through() -> None:
    value: Any = {"password": "deep-secret-1", "note": "Bearer deeptoken123456"}
    for _ in range(30):
        value = {"next": value}
    out = json.dumps(redact(value), default=str)
    assert "deep-secret-1" not in out
    assert "deeptoken123456" not in out


def test_sets_bytes_dataclasses_and_dict_keys_are_redacted() -> None:
    @dataclasses.dataclass
    class Creds:
        user: str
        password: str

    out = redact(
        {
            "tags": {"Bearer abcdefghijkl", "ok"},
            "frozen": frozenset({"token=zzzzzz"}),
            "raw": b"password=bytesecret",
            "creds": Creds("ann", "dcsecret"),
            "postgres://u:keysecret@h/db": 1,
        }
    )
    rendered = repr(out)
    for secret in ("abcdefghijkl", "zzzzzz", "bytesecret", "dcsecret", "keysecret"):
        assert secret not in rendered
    assert out["creds"] == {"user": "ann", "password": MASK}
    assert "ok" in out["tags"]
    assert isinstance(out["raw"], bytes)
    assert isinstance(out["frozen"], frozenset)


def test_header_lists_of_pairs_are_masked() -> None:
    out = redact(
        {
            "headers": [("Authorization", "Bearer x"), ("X-Api-Key", "k"), ("Accept", "json")],
            "raw": [(b"cookie", b"sid=1")],
        }
    )
    assert out["headers"] == [("Authorization", MASK), ("X-Api-Key", MASK), ("Accept", "json")]
    assert out["raw"][0][1] == MASK


def test_key_names_are_matched_on_their_ending() -> None:
    out = redact({"DB_PASSWORD": "a", "githubToken": "b", "max_tokens": 5, "token_count": 3})
    assert out == {"DB_PASSWORD": MASK, "githubToken": MASK, "max_tokens": 5, "token_count": 3}


class _Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = object.__hash__


class _BrokenMapping(dict[str, str]):
    def items(self) -> Any:
        raise RuntimeError("no items")

    def __repr__(self) -> str:
        return "{'password': 'x1x1x1'}"


class _Leaky:
    def __repr__(self) -> str:
        return "<Client api_key=sk-abcdefghijklmnopqrstuvwx>"


def test_redaction_never_raises_and_cycles_terminate() -> None:
    cyclic: list[Any] = ["password=c1cl3"]
    cyclic.append(cyclic)
    looped: dict[str, Any] = {"name": "x"}
    looped["self"] = looped
    out = redact(
        {
            "hostile": _Hostile(),
            "in_list": [_Hostile(), {"deep": _Hostile()}],
            "cyclic": cyclic,
            "looped": looped,
            "leaky": _Leaky(),
        }
    )
    assert out["hostile"] == "<unrepresentable _Hostile>"
    assert out["cyclic"][0] == "password=***"
    assert out["cyclic"][1] == "<cycle>"
    assert out["looped"]["self"] == "<cycle>"
    assert "abcdefghijklmnop" not in out["leaky"]
    assert redact(_BrokenMapping()) == "{'password': '***'}"
    assert redact(_Hostile()) == "<unrepresentable _Hostile>"
    assert redact_text(None) == "None"  # type: ignore[arg-type]


def test_plain_values_keep_their_type() -> None:
    import datetime
    import enum

    class Color(enum.Enum):
        RED = 1

    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    value = {"n": 1, "f": 1.5, "b": True, "none": None, "when": now, "color": Color.RED}
    assert redact(value) == value
    assert redact(value)["color"] is Color.RED

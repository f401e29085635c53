"""The supervisor's decisions as pure functions, driven by a fake clock (plain floats)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from strategies import (
    Backoff,
    BackoffState,
    BreakerPolicy,
    ChildInfo,
    ExitKind,
    OneForAll,
    OneForOne,
    RestartWindow,
    RestForOne,
    add_restart,
    next_backoff,
    plan_exit,
    should_restart,
)

ABC = [ChildInfo("a", "permanent"), ChildInfo("b", "permanent"), ChildInfo("c", "permanent")]


@pytest.mark.parametrize(
    ("restart", "kind", "expected"),
    [
        ("permanent", ExitKind.CRASH, True),
        ("permanent", ExitKind.NORMAL, True),
        ("permanent", ExitKind.HANG, True),
        ("permanent", ExitKind.SHUTDOWN, False),
        ("transient", ExitKind.CRASH, True),
        ("transient", ExitKind.HANG, True),
        ("transient", ExitKind.ESCALATED, True),
        ("transient", ExitKind.NORMAL, False),
        ("temporary", ExitKind.CRASH, False),
        ("temporary", ExitKind.NORMAL, False),
    ],
)
def test_restart_type_table(restart, kind, expected):
    assert should_restart(restart, kind) is expected


def test_intensity_allows_max_restarts_in_window_then_exceeds():
    history: tuple[float, ...] = ()
    for t in (0.0, 1.0, 2.0):
        check = add_restart(history, t, max_restarts=3, within=5.0)
        assert not check.exceeded
        history = check.history
    assert add_restart(history, 3.0, 3, 5.0).exceeded


def test_intensity_window_slides():
    history = add_restart((), 0.0, 1, 5.0).history
    assert add_restart(history, 5.0, 1, 5.0).exceeded  # 0.0 is still inside [0, 5]
    assert not add_restart(history, 5.01, 1, 5.0).exceeded


def test_zero_restarts_means_first_failure_escalates():
    assert add_restart((), 0.0, 0, 5.0).exceeded


@given(
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=50),
    st.integers(min_value=0, max_value=10),
    st.floats(min_value=0.01, max_value=100),
)
def test_intensity_history_only_keeps_window(times, max_restarts, within):
    history: tuple[float, ...] = ()
    for now in sorted(times):
        check = add_restart(history, now, max_restarts, within)
        assert all(now <= t + within for t in check.history)
        assert check.exceeded == (len(check.history) > max_restarts)
        history = check.history


def test_one_for_one_restarts_only_the_failed_child():
    plan = plan_exit(OneForOne(), ABC, "b", ExitKind.CRASH, 0)
    assert plan.restart == ("b",)
    assert plan.stop == ()
    assert plan.counted
    assert not plan.escalate


def test_one_for_all_stops_siblings_in_reverse_and_restarts_all_in_order():
    plan = plan_exit(OneForAll(), ABC, "b", ExitKind.CRASH, 0)
    assert plan.stop == ("c", "a")
    assert plan.restart == ("a", "b", "c")


def test_rest_for_one_restarts_the_failed_child_and_later_ones():
    plan = plan_exit(RestForOne(), ABC, "b", ExitKind.CRASH, 0)
    assert plan.stop == ("c",)
    assert plan.restart == ("b", "c")


def test_temporary_sibling_in_a_group_restart_is_removed_not_restarted():
    kids = [ChildInfo("a", "permanent"), ChildInfo("t", "temporary"), ChildInfo("c", "transient")]
    plan = plan_exit(OneForAll(), kids, "a", ExitKind.CRASH, 0)
    assert plan.remove == ("t",)
    assert plan.restart == ("a", "c")
    assert plan.stop == ("c", "t")


def test_temporary_child_that_crashes_is_removed_and_not_counted():
    kids = [ChildInfo("t", "temporary")]
    plan = plan_exit(OneForOne(), kids, "t", ExitKind.CRASH, 1)
    assert plan.remove == ("t",)
    assert plan.restart == ()
    assert not plan.counted


def test_transient_normal_exit_is_left_stopped():
    plan = plan_exit(OneForOne(), [ChildInfo("x", "transient")], "x", ExitKind.NORMAL, 0)
    assert plan.restart == ()
    assert plan.remove == ()
    assert not plan.counted


def test_budget_exhaustion_escalates_and_stops_everyone_in_reverse():
    strategy = OneForOne(max_restarts=2, within_seconds=5.0)
    window = RestartWindow(strategy.within_seconds)
    for t in (0.0, 0.1):
        plan = plan_exit(strategy, ABC, "a", ExitKind.CRASH, window.prune(t))
        assert not plan.escalate
        window.add(t)
    plan = plan_exit(strategy, ABC, "a", ExitKind.CRASH, window.prune(0.2))
    assert plan.escalate
    assert plan.counted
    assert plan.stop == ("c", "b")
    assert plan.restart == ()


def test_the_window_forgets_restarts_older_than_within_seconds():
    strategy = OneForOne(max_restarts=2, within_seconds=5.0)
    window = RestartWindow(5.0)
    window.add(0.0)
    window.add(1.0)
    assert plan_exit(strategy, ABC, "a", ExitKind.CRASH, window.prune(4.0)).escalate
    assert window.prune(5.0) == 2  # 0.0 is still inside [0, 5]
    assert window.prune(5.5) == 1
    assert not plan_exit(strategy, ABC, "a", ExitKind.CRASH, window.prune(5.5)).escalate


@given(
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=60),
    st.floats(min_value=0.01, max_value=100),
)
def test_restart_window_agrees_with_the_pure_tuple_form(times, within):
    window, history = RestartWindow(within), ()
    for now in sorted(times):
        history = add_restart(history, now, 10**9, within).history
        assert window.add(now) == len(history)
        assert window.history == history
        assert window.count(now) == len(history)


def test_strategy_defaults_are_elixirs():
    s = OneForOne()
    assert (s.max_restarts, s.within_seconds, s.backoff) == (3, 5.0, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_restarts": -1},
        {"within_seconds": 0},
        {"within_seconds": -2.0},
        {"bogus": 1},
        {"max_restarts": "many"},
    ],
)
def test_bad_strategy_values_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        RestForOne(**kwargs)


def test_backoff_grows_exponentially_and_is_capped():
    b = Backoff(min_backoff=0.1, max_backoff=1.0, random_factor=0.0)
    assert [b.delay(n, 0.5) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_jitter_stays_within_random_factor():
    b = Backoff(min_backoff=1.0, max_backoff=8.0, random_factor=0.5)
    assert b.delay(0, 0.0) == 1.0
    assert b.delay(0, 0.999) == pytest.approx(1.4995)


def test_backoff_resets_after_a_quiet_period():
    b = Backoff(min_backoff=0.1, max_backoff=1.0, random_factor=0.0, reset_after=30.0)
    state = BackoffState()
    delays = []
    for now in (0.0, 1.0, 2.0):
        d, state = next_backoff(b, state, now, 0.0)
        delays.append(d)
    assert delays == pytest.approx([0.1, 0.2, 0.4])
    d, state = next_backoff(b, state, 40.0, 0.0)
    assert d == pytest.approx(0.1)


def test_backoff_rejects_max_below_min():
    with pytest.raises(ValidationError, match="max_backoff"):
        Backoff(min_backoff=2.0, max_backoff=1.0)


def test_breaker_policy_validation():
    assert BreakerPolicy().fail_max == 5
    with pytest.raises(ValidationError):
        BreakerPolicy(fail_max=0)
    with pytest.raises(ValidationError):
        BreakerPolicy(reset_timeout=0)


@pytest.mark.parametrize("kind", list(ExitKind))
@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("recent", [0, 3])
def test_one_for_one_plans_an_exit_from_the_failed_childs_info_alone(kind, restart, recent):
    """The supervisor gives an independent strategy only the failed child's info (O(1) in a
    large tree): what restarts and what is removed must be what the whole list gives (when
    it escalates, the supervisor stops every child itself, whatever plan.stop says)."""
    kids = [ChildInfo("a", "permanent"), ChildInfo("b", restart), ChildInfo("c", "transient")]
    alone = [ChildInfo("b", restart)]
    strategy = OneForOne(max_restarts=3)
    assert OneForOne.independent
    assert not OneForAll.independent
    assert not RestForOne.independent
    full = plan_exit(strategy, kids, "b", kind, recent)
    one = plan_exit(strategy, alone, "b", kind, recent)
    assert (one.restart, one.remove, one.escalate, one.counted) == (
        full.restart,
        full.remove,
        full.escalate,
        full.counted,
    )
    if not full.escalate:
        assert one.stop == full.stop

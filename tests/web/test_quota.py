"""The per-organisation upload budget on a fake clock."""

from __future__ import annotations

from tritonwatch.web.quota import OrgBudget


def test_each_organisation_has_its_own_bucket_refilled_at_the_rate() -> None:
    now = [0.0]
    b = OrgBudget(capacity=100, rate=10, clock=lambda: now[0])
    assert b.wait_s("a", 100) == 0
    b.take("a", 100)
    assert b.wait_s("a", 30) == 3.0  # empty: 30 bytes take 3 s at 10 bytes/s
    assert b.wait_s("b", 100) == 0  # another organisation is untouched
    now[0] = 2.0
    assert b.wait_s("a", 30) == 1.0
    now[0] = 100.0
    assert b.wait_s("a", 100) == 0  # full again, never above the capacity
    b.take("a", 100)
    assert b.wait_s("a", 1) == 0.1


def test_a_body_without_a_declared_size_runs_into_debt_and_a_zero_rate_is_off() -> None:
    now = [0.0]
    b = OrgBudget(capacity=100, rate=10, clock=lambda: now[0])
    b.take("a", 150)
    assert b.wait_s("a", 10) == 6.0  # 50 bytes of debt + 10
    assert OrgBudget.retry_after(0.2) == "1" and OrgBudget.retry_after(6.0) == "6"
    off = OrgBudget(capacity=100, rate=0)
    off.take("a", 10**9)
    assert off.wait_s("a", 100) == 0

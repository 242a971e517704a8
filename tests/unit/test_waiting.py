"""The tests' one way of waiting (:func:`tests.support.waiting.until`) ends at its deadline,
even when the check it polls never answers."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.waiting import until


class TestUntil:
    async def test_a_condition_that_comes_true_ends_the_wait(self) -> None:
        answers = iter([False, False, True])
        await until(lambda: next(answers), "the third answer", every=0.001)

    async def test_a_check_that_never_answers_fails_at_the_deadline(self) -> None:
        never = asyncio.Event()

        async def waits_for_ever() -> bool:
            await never.wait()
            return True

        with pytest.raises(pytest.fail.Exception, match="did not answer") as failed:
            await until(waits_for_ever, "a check", within=0.2, every=0.01)
        assert "waits_for_ever" in str(failed.value)  # the failure says where it waits

    async def test_a_check_s_own_timeout_error_is_not_taken_for_the_deadline(self) -> None:
        async def failing() -> bool:
            raise TimeoutError("the check's own")

        with pytest.raises(TimeoutError, match="the check's own"):
            await until(failing, "a failing check", within=5.0)

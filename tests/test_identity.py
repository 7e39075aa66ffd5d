"""Names and limits: the normal forms of `leaderboard.identity` on hand-made cases, the rate
limiters of `leaderboard.ratelimit` with an injected clock, and the submitter keys
(`leaderboard.keys`, `python -m leaderboard keys`) on a real SQLite file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leaderboard.errors import ServiceError
from leaderboard.identity import (
    check_text,
    claims,
    clean_name,
    method_core,
    name_key,
    quota_key,
    skeleton,
)
from leaderboard.ratelimit import Backoff, SlidingWindow

# ----------------------------------------------------------------------------- normal forms

LOOK_ALIKES = {
    "alice": [
        "ALICE", "Alice", "аlice",  # Cyrillic а
        "ａｌｉｃｅ",  # fullwidth
        "𝐚𝐥𝐢𝐜𝐞",  # mathematical bold
        "ΑLICE",  # Greek capital alpha
        "AL1CE", "ALlCE",  # digit one, small L among capitals
        "al\u0131ce",  # dotless i
        "  alice  ", "ali\u0301ce",  # white space, a combining acute accent
    ],
    "Retrieval": ["RETRIEVAL", "Rеtrieval",  # Cyrillic е
                  "Retrіeval",  # Cyrillic і
                  "Rétrieval", "Ｒｅｔｒｉｅｖａｌ", "Retrie\u0300val"],
    "Mean shape": ["ΜEAN SHAPE",  # Greek capital mu
                   "МEAN SHAPE",  # Cyrillic capital em
                   "Mean  shape", "mean\u00a0shape",  # two spaces, a no-break space
                   "Μеаn ѕhаре"],  # Greek and Cyrillic letters mixed
    "office": ["oﬃce"],  # a ligature
    "bob": ["ΒOB",  # Greek capital beta
            "ВОВ",  # Cyrillic capitals
            "b0b"],  # digit zero
    "modern": ["rnodern"],  # r + n looks like m
}  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "variant"), [(r, v) for r, vs in LOOK_ALIKES.items() for v in vs]
)
def test_look_alike_names_have_one_key(reference: str, variant: str) -> None:
    assert name_key(variant) == name_key(reference)
    assert quota_key(variant) == quota_key(reference)
    assert method_core(variant) == method_core(reference)


@pytest.mark.parametrize(
    ("a", "b"),
    [("alice", "alicia"), ("bob", "rob"), ("Voxel decoder", "Voxel encoder"), ("ann", "anna"),
     ("Retrieval", "Retrieve"), ("sam", "pam"), ("chair net", "chairnet 2")],
)  # fmt: skip
def test_different_names_stay_different(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


def test_the_key_is_idempotent_and_collapses_white_space() -> None:
    for text in ["Ｍｅｔｈｏｄ  Ｘ", "ΜEAN SHAPE", "Retrіeval #2", "a\tb\nc"]:
        assert skeleton(skeleton(text)) == skeleton(text)
    assert name_key("  my \t method \n") == name_key("my method")


def test_quota_key_drops_tags_numbers_and_separators_at_the_end() -> None:
    base = quota_key("alice")
    for variant in ["alice+2", "alice2", "alice-02", "alice_7", "Alice.", "a.lice", "alice 99",
                    "alice+team", "ALICE+2"]:  # fmt: skip
        assert quota_key(variant) == base, variant
    assert quota_key("alice+lab@uni.edu") == quota_key("alice@uni.edu")
    assert quota_key("bob") != base and quota_key("2alice") != base  # a different name
    assert quota_key("1234") == quota_key("1234 ")  # digits only: kept, not emptied
    # name_key keeps what quota_key drops: a different display name is a different entry name
    assert name_key("alice2") != name_key("alice")


def test_method_core_reduces_numbered_and_bracketed_imitations() -> None:
    core = method_core("Retrieval")
    for variant in ["Retrieval #2", "Retrieval (v2)", "Retrieval [ours]", "Retrieval v3",
                    "Retrieval 2", "retrieval-2", "Retrieval (a (nested) note)"]:  # fmt: skip
        assert method_core(variant) == core, variant
    assert method_core("Retrieval++ with attention") != core
    assert method_core("Oracle NN (uses ground truth)") == method_core("Oracle NN")


def test_status_claims_are_found_in_any_spelling() -> None:
    assert claims("Occupancy network (verified)") == ["verified"]
    assert claims("OFFICIAL net") == ["official"]
    assert claims("My vеrified method") == ["verified"]  # Cyrillic е
    assert claims("Net (Baseline)") == ["baseline"]
    assert claims("Reference net") == ["reference"]
    assert claims("Unofficial port") == ["official"]
    assert claims("Preference learning") == [] and claims("My method") == []


@pytest.mark.parametrize(
    ("text", "code"),
    [("ali\u200bce", "U+200B"),  # zero-width space
     ("ali\u202ece", "U+202E"),  # right-to-left override
     ("a\x00b", "U+0000"), ("a\u200db", "U+200D"), ("a\ufeffb", "U+FEFF"),
     ("a\u00adb", "U+00AD"), ("a\u2066b", "U+2066"), ("a\u3164b", "U+3164"),
     ("a\ufe0fb", "U+FE0F"), ("a\ue000b", "U+E000"), ("a\nb", "U+000A")],
)  # fmt: skip
def test_control_and_format_characters_are_refused_with_their_name(text: str, code: str) -> None:
    with pytest.raises(
        ServiceError, match=rf"submitter name contains .*\({re.escape(code)} "
    ) as info:
        check_text(text, "submitter name")
    assert "position 2" in info.value.reason or "position 4" in info.value.reason


def test_descriptions_may_have_lines_but_no_controls() -> None:
    check_text("line one\nline two\tend", "description", multiline=True)
    with pytest.raises(ServiceError, match=r"U\+202E RIGHT-TO-LEFT OVERRIDE"):
        check_text("line\u202e", "description", multiline=True)


def test_clean_name_keeps_what_was_typed() -> None:
    assert clean_name("  Ｍｙ  Net  ", "method name", 100) == "Ｍｙ  Net"
    with pytest.raises(ServiceError, match="at least one letter or digit"):
        clean_name("\u0301\u0301", "method name", 100)
    with pytest.raises(ServiceError, match="longer than 5"):
        clean_name("abcdefg", "method name", 5)


def test_every_shipped_method_has_a_reserved_display_name() -> None:
    from leaderboard.seed import BASELINE_NAMES
    from svr.models import REGISTRY

    assert set(REGISTRY) <= set(BASELINE_NAMES)


# ----------------------------------------------------------------------------- rate limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_counts_per_key_and_forgets_old_events() -> None:
    clock = Clock()
    window = SlidingWindow(3, 60.0, clock=clock)
    for _ in range(3):
        assert window.retry_after("a") == 0
        window.add("a")
        clock.now += 10
    assert window.retry_after("a") == pytest.approx(30.0)  # the first leaves at t0 + 60
    assert window.retry_after("b") == 0  # per key
    clock.now += 30.01
    assert window.retry_after("a") == 0 and window.count("a") == 2


def test_sliding_window_memory_is_bounded() -> None:
    window = SlidingWindow(1, 60.0, clock=Clock(), max_keys=100)
    for k in range(1000):
        window.add(f"client{k}")
    assert len(window._events) == 100
    assert window.retry_after("client999") > 0 and window.retry_after("client0") == 0


def test_backoff_doubles_after_the_free_failures_and_a_success_resets() -> None:
    clock = Clock()
    backoff = Backoff(free=3, base_s=1.0, max_s=8.0, clock=clock)
    for _ in range(3):
        assert backoff.retry_after("x") == 0
        backoff.failed("x")
    waits = []
    for _ in range(5):
        waits.append(backoff.retry_after("x"))
        clock.now += waits[-1]
        assert backoff.retry_after("x") == 0
        backoff.failed("x")
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # capped at max_s
    backoff.succeeded("x")
    assert backoff.retry_after("x") == 0
    backoff.failed("y")
    clock.now += 3601  # forgotten after an hour without failures
    assert backoff.delay(0) == 0 and backoff.retry_after("y") == 0


# ----------------------------------------------------------------------------- keys


def test_keys_command_adds_lists_and_revokes(tmp_path: Path, monkeypatch, capsys) -> None:
    from leaderboard.__main__ import main
    from leaderboard.db import SubmitterKey, make_engine, make_session_factory
    from leaderboard.keys import check_key

    monkeypatch.setenv("SVR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["keys", "add", "Alice"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("svrk_") and len(key) == 5 + 32
    assert main(["keys", "add", "ALICE"]) == 2  # one key per name (normal form)
    assert "already has a key" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "Alice" in listing and "active" in listing and key not in listing

    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'svr.db'}")
    factory = make_session_factory(engine)
    with factory() as session:
        (stored,) = session.query(SubmitterKey).all()
        assert stored.key_sha256 != key and key not in stored.key_sha256  # only a hash
    assert check_key(factory, "alice", key) and check_key(factory, "Аlice", key)  # Cyrillic А
    assert not check_key(factory, "alice", "svrk_" + "x" * 32)
    assert not check_key(factory, "bob", key) and not check_key(factory, "alice", "")

    assert main(["keys", "revoke", "alice"]) == 0
    assert not check_key(factory, "alice", key)
    assert main(["keys", "revoke", "alice"]) == 2
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "add", "alice"]) == 0  # a revoked name gets a new key
    new = capsys.readouterr().out.strip()
    assert new != key and check_key(factory, "alice", new)
    assert main(["keys", "add", "alice", "--replace"]) == 0
    assert not check_key(factory, "alice", new)
    assert main(["keys", "add", "ali\u202ece"]) == 2  # names follow the submitter rules
    engine.dispose()

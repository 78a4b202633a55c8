"""``ThreadChoice``: BLAS threads or one thread per training call, from measured times."""
import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnn as fn
from fastnn import _thread_policy
from fastnn._thread_policy import ThreadChoice


class FakeLimit:
    def __init__(self):
        self.calls = []

    def __call__(self, n):
        self.calls.append(n)
        return contextlib.nullcontext()


class Machine:
    """A fake run queue (``/proc/loadavg``'s runnable threads): ``others`` threads of
    other processes plus this process's running ones -- its caller alone before a fit
    and after a call on one thread, two after a call on the threads (whose pool still
    spins).  ``run`` keeps ``own`` up to date."""

    def __init__(self, others, cores=2):
        self.others, self.cores, self.own = others, cores, 1

    def __call__(self):
        return float(self.others + self.own)

    def choice(self, threads=2, limit=None, look_seconds=None):
        choice = ThreadChoice(threads=threads, cores=self.cores, load=self, limit=limit or FakeLimit())
        if look_seconds is not None:
            choice.LOOK_SECONDS = look_seconds
        return choice


def run(choice, seconds):
    """Make one call per entry of ``seconds`` ({setting: seconds per batch}); the settings used."""
    used = []
    for table in seconds:
        setting = choice.setting
        with choice.limit():
            pass
        used.append(setting)
        if isinstance(choice._load, Machine):
            choice._load.own = choice.threads if setting == "threads" else 1
        choice.record(table[setting])
    return used


@pytest.fixture(autouse=True)
def _no_recent_threads(monkeypatch):
    """No fit's call on BLAS's threads ended just before a test (whose pool would still spin);
    and every call may look at the run queue, as calls longer than LOOK_SECONDS do (``run``
    records calls of no seconds)."""
    monkeypatch.setattr(_thread_policy, "_threads_ended", float("-inf"))
    monkeypatch.setattr(ThreadChoice, "LOOK_SECONDS", 0.0)


QUIET = {"threads": 1.0, "one": 1.8}
BUSY = {"threads": 4.0, "one": 1.1}


def test_one_thread_is_never_limited():
    limit = FakeLimit()
    choice = ThreadChoice(threads=1, load=lambda: 50.0, limit=limit)
    assert run(choice, [BUSY] * 20) == ["threads"] * 20
    assert limit.calls == [] and choice.probes == 0


def test_a_quiet_machine_keeps_the_threads_and_never_probes():
    limit = FakeLimit()
    choice = Machine(others=0).choice(limit=limit)
    assert run(choice, [QUIET] * 200) == ["threads"] * 200
    assert limit.calls == [] and choice.probes == 0


def test_a_long_fit_probes_once_after_its_first_second():
    """A machine busy since before the fit shows no slowdown to compare with: one probe
    after a second of training finds it; on a quiet machine that probe loses, once."""
    for table, setting in ((QUIET, "threads"), (BUSY, "one")):
        choice = Machine(others=0).choice()  # busy or not, the run queue does not show it
        used = []
        for _ in range(40):
            used.append(choice.setting)
            choice.record(table[choice.setting], seconds=0.1)
        assert choice.current == setting
        assert used[:11] == ["threads"] * 11 and used[11:13] == ["one", "one"], used
        if setting == "threads":  # a probe of two calls, lost
            assert used.count("one") == 2 and choice.probes == 1


def test_a_fit_on_a_busy_machine_starts_on_one_thread_and_rarely_tries_the_threads():
    limit = FakeLimit()
    choice = Machine(others=3).choice(limit=limit)
    used = run(choice, [BUSY] * 600)
    # the run queue leaves no core free for the threads when the fit starts: one thread
    # from the first call (on the threads, the first calls would cost several times more)
    assert used[0] == "one" and choice.current == "one"
    # while it stays so, the threads are tried (two calls, lost) only after the longest wait
    starts = [i for i in range(1, len(used)) if used[i] == "threads" and used[i - 1] == "one"]
    assert len(starts) == 2 and starts[0] > ThreadChoice.MAX_WAIT, starts
    assert all(used[i + 1] == "threads" for i in starts) and used.count("threads") == 4
    assert len(limit.calls) == used.count("one") and set(limit.calls) == {1}
    cost = sum(BUSY[s] for s in used) / (BUSY["one"] * len(used))
    assert cost < 1.05


def test_one_busy_core_of_two_starts_a_fit_on_one_thread():
    # one core taken by another process, this process's caller on the other
    assert Machine(others=1).choice().current == "one"
    assert Machine(others=0).choice().current == "threads"


def test_blas_threads_still_spinning_after_a_fit_are_no_crowd(monkeypatch):
    machine = Machine(others=0)
    run(machine.choice(), [QUIET] * 3)  # ends on the threads, whose pool spins on a while
    machine.own = 2
    assert machine.choice().current == "threads"
    monkeypatch.setattr(_thread_policy, "_threads_ended", float("-inf"))
    assert machine.choice().current == "one"  # the same run queue long after: a busy core


def test_a_machine_that_gets_busy_during_a_fit_moves_it_to_one_thread():
    machine = Machine(others=0)
    choice = machine.choice()
    assert run(choice, [QUIET] * 5) == ["threads"] * 5
    machine.others = 3
    used = run(choice, [BUSY] * 10)
    # crowded cores seen at two calls in a row, then one thread tried for two calls: it wins
    assert used[:4] == ["threads"] * 2 + ["one"] * 2 and choice.current == "one"
    assert used[4:] == ["one"] * 6  # and, with the cores still taken, the threads are left alone


def test_the_run_queue_is_weighed_against_the_whole_machine():
    """Pinned to two of sixteen cores, six other threads (three more jobs like this
    one, pinned elsewhere) are no crowd; on a two-core machine three are."""
    pinned = Machine(others=6, cores=16).choice()
    assert run(pinned, [QUIET] * 8) == ["threads"] * 8 and pinned.probes == 0
    small = Machine(others=3, cores=2).choice()
    assert run(small, [QUIET] * 8) == ["one"] * 8
    assert ThreadChoice(threads=4, cores=2).cores == 4  # never fewer cores than threads


class CountingMachine(Machine):
    def __init__(self, others, cores=2):
        super().__init__(others, cores)
        self.looks = 0

    def __call__(self):
        self.looks += 1
        return super().__call__()


def test_short_calls_look_at_the_run_queue_once_per_look_seconds():
    """A look at the run queue costs far more than a short call's share of it after
    the process slept: calls look only once LOOK_SECONDS of calls went by since the last
    look (the fit's start counts as one), and a crowd needs two such looks."""
    look, call = 1 / 64, 1 / 512  # a look every 8 calls (binary fractions: no rounding)
    machine = CountingMachine(others=0)
    choice = machine.choice(look_seconds=look)
    assert machine.looks == 1  # the fit's start
    for _ in range(30):
        choice.record(1e-4, seconds=call)
    assert machine.looks == 1 + 3  # after calls 8, 16 and 24
    # the machine gets busy, which only the run queue shows (the calls keep their speed):
    # seen at the looks after calls 32 and 40, then one thread probed and kept
    machine.others = 3
    used = []
    for _ in range(20):  # calls 31 to 50
        used.append(choice.setting)
        choice.record({"threads": 1e-4, "one": 0.5e-4}[choice.setting], seconds=call)
    assert used[:10] == ["threads"] * 10 and used[10:12] == ["one", "one"], used
    assert choice.probes == 1 and choice.current == "one"
    long_calls = CountingMachine(others=0)
    choice = long_calls.choice(look_seconds=look)
    for _ in range(5):  # calls longer than LOOK_SECONDS: a look at every call that may doubt
        choice.record(1e-3, seconds=0.1)
    assert long_calls.looks == 1 + 4  # the fit's start, then every call after the first


def test_when_the_machine_frees_up_the_threads_come_back():
    machine = Machine(others=3)
    choice = machine.choice()
    run(choice, [BUSY] * 5)
    assert choice.current == "one"
    machine.others = 0
    used = run(choice, [QUIET] * 6)
    # free cores seen at two calls in a row, then the threads tried for two calls: they win
    assert used == ["one"] * 2 + ["threads"] * 4 and choice.current == "threads"


def test_calls_that_get_slower_make_it_probe_even_without_load():
    choice = ThreadChoice(threads=2, cores=2, load=lambda: 0.0, limit=FakeLimit())
    assert run(choice, [QUIET] * 10) == ["threads"] * 10
    assert run(choice, [BUSY] + [QUIET] * 5) == ["threads"] * 6  # one slow call is noise
    assert choice.probes == 0
    used = run(choice, [BUSY] * 5)  # another process took a core; the run queue missed it
    assert used == ["threads", "threads", "one", "one", "one"] and choice.switches == 1


def test_a_probe_must_beat_the_recent_calls_clearly():
    """One thread at 1.25 against threads at 1.0: a probe after two slow calls may win,
    but the threads are tried again and win back; a probe against ordinary calls loses."""
    choice = ThreadChoice(threads=2, cores=2, load=lambda: 0.0, limit=FakeLimit())
    normal = {"threads": 1.0, "one": 1.25}
    run(choice, [normal] * 2)
    run(choice, [{"threads": 2.0, "one": 1.25}, {"threads": 1.4, "one": 1.25}])
    run(choice, [normal] * 20)
    assert choice.current == "threads"
    # a run queue that says crowded while the threads are faster all the same: the fit
    # starts on one thread, tries the threads after the longest wait and keeps them
    choice = Machine(others=3).choice()
    used = run(choice, [normal] * 300)
    assert used[0] == "one" and choice.current == "threads" and choice.switches == 1


def test_a_probe_that_loses_keeps_the_threads_and_waits_longer_each_time():
    slower = {"threads": 1.5, "one": 1.8}  # the threads got slower but still win
    choice = ThreadChoice(threads=2, cores=2, load=lambda: 0.0, limit=FakeLimit())
    run(choice, [QUIET] * 2)
    used = run(choice, [slower] * 200)
    starts = [i for i, s in enumerate(used) if s == "one" and (i == 0 or used[i - 1] == "threads")]
    assert choice.current == "threads" and choice.switches == 0
    assert all(used[i + 1] == "one" for i in starts)  # each probe is two calls
    gaps = np.diff(starts)
    assert list(gaps[:3]) == [19, 35, 67]  # the probe's two calls, waits of 16, 32, 64, the call that doubts


@pytest.mark.parametrize("backend", [b for b in ("numpy", "numba") if b in fn.backends.available()])
def test_fit_holds_blas_at_one_thread_only_during_its_calls(backend, monkeypatch):
    """On a (pretend) busy machine fit runs calls with BLAS at one thread; afterwards every
    pool has its threads back: nothing carries over to predict or to the next fit."""
    if fn.get_num_threads() < 2:
        pytest.skip("one core: no threads to choose between")
    looks = iter(range(10**6))  # a run queue crowded for the first 20 looks, then quiet
    monkeypatch.setattr(_thread_policy, "_runnable", lambda: 100.0 if next(looks) < 20 else 1.0)
    monkeypatch.setattr(fn._training.CompiledLoop, "CALL_SECONDS", 1e-9)  # one batch a call
    monkeypatch.setattr(_thread_policy, "BLAS_ONE_THREAD_MACS", 0)  # this model's tiny products held too
    # Calls of one 10-row batch take about 10 us on either setting, so whether a probe of
    # the threads wins would be noise: here it always does, once the run queue lets it run.
    monkeypatch.setattr(_thread_policy.ThreadChoice, "BETTER", {"one": 0.8, "threads": float("inf")})
    # Nor may a slow call (noise, at 10 us a call) start a probe of one thread at the end.
    monkeypatch.setattr(_thread_policy.ThreadChoice, "SLOWER", float("inf"))
    monkeypatch.setattr(_thread_policy.ThreadChoice, "CHECK_AFTER", float("inf"))
    before = _blas_threads()
    model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=6), fn.Dense(3, activation="softmax")],
                          backend=backend, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    K = model._kernels
    seen = []
    monkeypatch.setattr(K, "train_batches", _spy(K.train_batches, seen))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((400, 6)), rng.integers(0, 3, 400)
    model.fit(X, y, epochs=2, batch_size=10, verbose=0)
    # one batch a call: the first calls ran on one thread, later ones on the threads again
    assert seen[0] == 1 and 1 in seen and max(seen) == max(before) and seen[-1] == max(before)
    assert _blas_threads() == before


@pytest.mark.parametrize("backend", [b for b in ("numpy", "numba") if b in fn.backends.available()])
def test_products_too_small_for_blas_threads_are_not_held(backend, monkeypatch):
    """On a (pretend) busy machine a model whose products BLAS runs on one thread anyway
    trains on one thread without the hold on BLAS (its cost is all it would add); the
    Numba loop is still told to run on one thread."""
    if fn.get_num_threads() < 2:
        pytest.skip("one core: no threads to choose between")
    monkeypatch.setattr(_thread_policy, "_runnable", lambda: 100.0)
    holds = []
    monkeypatch.setattr(_thread_policy, "_blas_limit", lambda n=1: holds.append(n) or contextlib.nullcontext())
    model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=6), fn.Dense(3, activation="softmax")],
                          backend=backend, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    K = model._kernels
    settings = []

    def spy(plan, first, count, lrs, step0):
        settings.append(plan.threads)
        return train_batches(plan, first, count, lrs, step0)

    train_batches = K.train_batches
    monkeypatch.setattr(K, "train_batches", spy)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((400, 6)), rng.integers(0, 3, 400)
    model.fit(X, y, epochs=2, batch_size=10, verbose=0)  # products of 10 x 6 x 8 multiply-adds
    assert settings and set(settings) == {1} and holds == []
    # the same machine, products above OpenBLAS's threshold: held
    monkeypatch.setattr(_thread_policy, "BLAS_ONE_THREAD_MACS", 10 * 6 * 8 - 1)
    model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert holds and set(holds) == {1}


def test_a_choice_on_one_thread_holds_blas_only_for_products_blas_would_thread():
    small = Machine(others=3).choice()
    assert small.current == "one" and small.holds_blas  # no product size given: held
    for macs, held in ((_thread_policy.BLAS_ONE_THREAD_MACS, False), (_thread_policy.BLAS_ONE_THREAD_MACS + 1, True)):
        limit = FakeLimit()
        choice = ThreadChoice(threads=2, cores=2, load=lambda: 3.0, limit=limit, product_macs=macs)
        with choice.limit():
            pass
        assert choice.current == "one" and limit.calls == ([1] if held else [])


def _blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def _spy(train_batches, seen):
    def spy(plan, first, count, lrs, step0):
        seen.append(min(_blas_threads()))
        return train_batches(plan, first, count, lrs, step0)
    return spy


def test_a_probe_of_the_threads_makes_short_calls():
    """Calls hold about CALL_SECONDS of work at the last call's speed; a probe of BLAS's
    threads from one thread runs a quarter of that (each of its batches may take several
    times longer), a probe of one thread the full length (its first call still competes
    with the threads' spinning pool, and a short second one would be judged on that)."""
    loop = fn._training.CompiledLoop.__new__(fn._training.CompiledLoop)
    loop.seconds_per_batch = None
    loop.threads = Machine(others=3).choice()  # starts on one thread
    assert loop._batches_per_call(most=1000) == 4  # a fit's first call
    loop.seconds_per_batch = loop.CALL_SECONDS / 100
    assert loop._batches_per_call(most=1000) == 100
    assert loop._batches_per_call(most=30) == 30
    loop.threads.probing = 2  # on one thread: the probe runs the threads
    assert loop.threads.setting == "threads" and loop._batches_per_call(most=1000) == 25
    loop.threads.current = "threads"  # on the threads: the probe runs one thread
    assert loop.threads.setting == "one" and loop._batches_per_call(most=1000) == 100


def test_the_run_queue_counts_this_process():
    assert _thread_policy._runnable() >= 1  # the reading thread itself is running


def test_overlapping_holds_from_two_threads_restore_the_pools():
    """Two fits whose one-thread calls overlap (in two threads) leave BLAS as it was:
    the limit is lifted when the last hold ends, not by whichever ends first."""
    before = _blas_threads()
    first, second = _thread_policy._blas_limit(), _thread_policy._blas_limit()
    first.__enter__()
    assert set(_blas_threads()) == {1}
    second.__enter__()
    first.__exit__(None, None, None)  # the first fit's call ends while the second's runs
    assert set(_blas_threads()) == {1}
    second.__exit__(None, None, None)
    assert _blas_threads() == before


def test_fits_in_several_threads_leave_blas_as_it_was(monkeypatch):
    import threading

    monkeypatch.setattr(_thread_policy, "_runnable", lambda: 100.0)
    monkeypatch.setattr(fn._training.CompiledLoop, "CALL_SECONDS", 1e-9)
    before = _blas_threads()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 6)), rng.integers(0, 3, 300)
    errors = []

    def train(seed):
        try:
            model = fn.Sequential([fn.Dense(8, activation="relu", input_dim=6), fn.Dense(3, activation="softmax")],
                                  backend="numpy", seed=seed)
            model.compile("adam", "sparse_categorical_crossentropy")
            model.fit(X, y, epochs=3, batch_size=10, verbose=0)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _blas_threads() == before


@pytest.mark.skipif("numba" not in fn.backends.available(), reason="numba is not installed")
def test_numba_predict_takes_the_same_counted_hold_as_fit(monkeypatch):
    """A predict whose one-thread BLAS hold outlives a fit's (two threads) must not
    restore the fit's limit: both go through one counted hold."""
    from fastnn._kernels import blas_threads

    holds = []
    one_thread = blas_threads.one_thread

    def counting():
        holds.append(1)
        return one_thread()

    monkeypatch.setattr(blas_threads, "one_thread", counting)
    model = fn.Sequential([fn.Dense(64, activation="relu", input_dim=300), fn.Dense(10, activation="softmax")],
                          backend="numba", seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    before = _blas_threads()
    fit_hold = _thread_policy._blas_limit()
    fit_hold.__enter__()
    predict_hold = blas_threads.one_thread()  # what predict takes: enter while the fit holds,
    predict_hold.__enter__()
    fit_hold.__exit__(None, None, None)  # the fit's call ends first,
    assert set(_blas_threads()) == {1}  # the predict still runs on one thread,
    predict_hold.__exit__(None, None, None)
    assert _blas_threads() == before  # and the pools come back when it ends
    holds.clear()
    from fastnn._kernels.numba import _predict

    rows = int(_predict.MIN_PARALLEL_FLOPS // (2 * (300 * 64 + 64 * 10))) + 64
    model.predict(np.random.default_rng(0).random((rows, 300)))  # large enough for the parallel path
    assert holds, "numba's predict_rows did not take the counted hold"


@pytest.mark.skipif("cython" not in fn.backends.available(), reason="the Cython backend is not built")
@pytest.mark.parametrize("first", ["cython", "python"])
def test_cython_and_python_holds_are_one_counted_hold(first):
    """A Cython predict's hold (predict_rows, train_batches) and a Numba predict's or a
    fit's (blas_threads.one_thread) overlapping in two threads, whichever ends first,
    keep BLAS on one thread while either runs and give its threads back after both."""
    from threadpoolctl import threadpool_limits

    from fastnn._kernels import blas_threads
    from fastnn._kernels.cython import _dense

    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        python_hold = blas_threads.one_thread()
        if first == "cython":
            if not _dense.hold_blas_single():
                pytest.skip("the Cython backend cannot hold this BLAS")
            python_hold.__enter__()  # starts while the Cython hold is on
            _dense.release_blas_single()  # and outlives it
            assert set(_blas_threads()) == {1}
            python_hold.__exit__(None, None, None)
        else:
            python_hold.__enter__()
            if not _dense.hold_blas_single():
                python_hold.__exit__(None, None, None)
                pytest.skip("the Cython backend cannot hold this BLAS")
            python_hold.__exit__(None, None, None)
            assert set(_blas_threads()) == {1}  # the Cython hold still on
            _dense.release_blas_single()
        assert _blas_threads() == before
    with pytest.raises(RuntimeError, match="no hold"):
        _dense.release_blas_single()

from podbay.agent.backoff import Backoff, backoff_key


def test_first_restart_is_immediate_then_doubles_to_cap():
    b = Backoff(base=10, cap=40)
    k = backoff_key("uid", "c")
    assert b.remaining(k, event_time=0, now=0) == 0
    delays = []
    t = 0.0
    for _ in range(5):
        delays.append(b.next(k, event_time=t, now=t))
        t += 1
    assert delays == [10, 20, 40, 40, 40]


def test_in_backoff_since_exit_time():
    b = Backoff(base=10, cap=300)
    k = backoff_key("uid", "c")
    b.next(k, event_time=100, now=100)  # first restart, immediate
    # exited again at 105: must wait 10 s from the exit
    assert b.remaining(k, event_time=105, now=106) == 9
    assert b.remaining(k, event_time=105, now=115) == 0


def test_reset_after_long_clean_run():
    b = Backoff(base=10, cap=300)
    k = backoff_key("uid", "c")
    for t in (0, 1, 2, 3):
        b.next(k, event_time=t, now=t)
    assert b.get(k) == 80
    # ran 10 minutes + after its last restart: forgotten
    assert b.remaining(k, event_time=3 + 601, now=3 + 601) == 0
    assert b.next(k, event_time=604, now=604) == 10


def test_configurable_reset_and_forget():
    b = Backoff(base=1, cap=4, reset_after=5)
    b.next("u1/a", 0, 0)
    b.next("u1/a", 1, 1)
    assert b.get("u1/a") == 2
    assert b.remaining("u1/a", event_time=7, now=7) == 0
    b.next("u2/a", 0, 0)
    b.forget("u1/")
    assert b.get("u1/a") == 0 and b.get("u2/a") == 1

import json
from binascii import unhexlify

from gateway.cli import auth
from hal import crypto
from hal.fs import Flash
from hal.virtualclock import VirtualClock
from tests.core.util import holds_secret, raises, rmtree, tmpdir


def _accounts(*entries):
    return auth.parse_accounts(json.dumps({"accounts": list(entries)}))


def _login(a, tech_id, pin, clock):
    check = a.begin(tech_id, pin, clock.ticks_ms())
    while not check.step(100):
        pass
    return a.finish(check, clock.ticks_ms())


def test_hash_is_salted_iterated_sha256():
    salt = b"0123456789abcdef"
    h = crypto.sha256(salt + b"1234")
    h = crypto.sha256(h + salt + b"1234")
    h = crypto.sha256(h + salt + b"1234")
    assert auth.hash_pin("1234", salt, 3) == h
    assert auth.hash_pin("1234", b"fedcba9876543210", 3) != h


def test_make_account_never_holds_the_pin_and_salts_differ():
    a = auth.make_account("1001", "4711", "Zhang", iterations=50)
    b = auth.make_account("1002", "4711", "Li", iterations=50)
    assert not holds_secret("4711", a)
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]
    assert auth.hash_pin("4711", unhexlify(a["salt"]), 50) == unhexlify(a["hash"])


def test_ids_and_pins_are_checked():
    assert raises(auth.AuthError, auth.make_account, "10 01", "1234")
    assert raises(auth.AuthError, auth.make_account, "", "1234")
    assert raises(auth.AuthError, auth.make_account, "x" * 17, "1234")
    assert raises(auth.AuthError, auth.make_account, "1001", "12a4")
    assert raises(auth.AuthError, auth.make_account, "1001", "123")
    assert auth.make_account("tech_7-b", "123456789012", iterations=1)["id"] == "tech_7-b"


def test_login_right_and_wrong_pin():
    clock = VirtualClock()
    a = auth.Auth(_accounts(auth.make_account("1001", "2468", "Zhang", iterations=300)), clock)
    assert a.who is None
    assert not _login(a, "1001", "2469", clock)
    assert a.who is None and a.failures == 1
    assert not _login(a, "9999", "2468", clock)
    assert _login(a, "1001", "2468", clock)
    assert a.who == "tech:1001" and a.name() == "Zhang" and a.failures == 0
    a.logout()
    assert a.who is None


def test_hash_is_computed_in_slices():
    clock = VirtualClock()
    a = auth.Auth(_accounts(auth.make_account("1001", "2468", iterations=1000)), clock)
    check = a.begin("1001", "2468", 0)
    steps = 1
    while not check.step(256):
        steps += 1
    assert steps == 4
    assert a.finish(check, 0)


def test_five_failures_lock_for_five_minutes():
    clock = VirtualClock()
    a = auth.Auth(_accounts(auth.make_account("1001", "2468", iterations=20)), clock)
    for _ in range(5):
        assert not _login(a, "1001", "0000", clock)
    e = raises(auth.AuthError, a.begin, "1001", "2468", clock.ticks_ms())
    assert "locked" in str(e)
    assert a.locked_s(clock.ticks_ms()) == 300
    clock.advance_ms(299 * 1000)
    assert raises(auth.AuthError, a.begin, "1001", "2468", clock.ticks_ms())
    clock.advance_ms(1000)
    assert a.locked_s(clock.ticks_ms()) == 0
    assert _login(a, "1001", "2468", clock)


def test_lockout_survives_restart():
    clock = VirtualClock()
    accounts = _accounts(auth.make_account("1001", "2468", iterations=20))
    a = auth.Auth(accounts, clock)
    for _ in range(5):
        _login(a, "1001", "0000", clock)
    clock.advance_ms(100 * 1000)
    state = json.loads(json.dumps(a.snapshot()))
    assert state["lock_left_s"] == 200
    clock2 = VirtualClock(ticks_start=12345)
    b = auth.Auth(accounts, clock2)
    b.restore(state)
    assert raises(auth.AuthError, b.begin, "1001", "2468", clock2.ticks_ms())
    clock2.advance_ms(200 * 1000)
    assert _login(b, "1001", "2468", clock2)


def test_failures_and_lockouts_survive_power_cuts():
    # Failures lived only in the 10 s checkpoint: five wrong PINs and a cut, and the right
    # PIN logged in at once; spread over cuts, 9 wrong PINs passed.
    from gateway.store.slots import Slots
    from tests.core.faultfs import FaultFlash

    accounts = _accounts(auth.make_account("1001", "2468", iterations=20))
    flash = FaultFlash()

    def boot():
        clock = VirtualClock(ticks_start=777)
        return auth.Auth(accounts, clock, store=Slots(flash, auth.AUTH_SLOT)), clock

    a, clock = boot()
    for _ in range(5):
        assert not _login(a, "1001", "0000", clock)
    flash = flash.restart()  # the power goes right after the fifth answer
    a, clock = boot()
    e = raises(auth.AuthError, a.begin, "1001", "2468", clock.ticks_ms())
    assert "locked" in str(e) and a.locked_s(clock.ticks_ms()) == 300
    clock.advance_ms(300 * 1000)
    assert a.locked_s(clock.ticks_ms()) == 0
    flash = flash.restart()  # the expired lock does not come back
    a, clock = boot()
    assert a.locked_s(clock.ticks_ms()) == 0
    # Spread over cuts: two wrong, cut, two wrong, cut, one wrong: locked (longer now).
    tries = 0
    for n in (2, 2, 1):
        for _ in range(n):
            assert not _login(a, "1001", "0000", clock)
            tries += 1
        flash = flash.restart()
        a, clock = boot()
    assert tries == 5 and a.locked_s(clock.ticks_ms()) == 600
    assert raises(auth.AuthError, a.begin, "1001", "2468", clock.ticks_ms())


def test_lockouts_grow_until_a_good_login():
    clock = VirtualClock()
    a = auth.Auth(_accounts(auth.make_account("1001", "2468", iterations=20)), clock)
    locks = []
    for _ in range(11):
        for _ in range(5):
            assert not _login(a, "1001", "0000", clock)
        locks.append(a.locked_s(clock.ticks_ms()))
        clock.advance_ms(locks[-1] * 1000)
    assert locks == [300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400]
    assert _login(a, "1001", "2468", clock) and a.lockouts == 0
    a.logout()
    for _ in range(5):
        _login(a, "1001", "0000", clock)
    assert a.locked_s(clock.ticks_ms()) == 300


def test_idle_logout():
    clock = VirtualClock()
    a = auth.Auth(_accounts(auth.make_account("1001", "2468", iterations=20)), clock, 60)
    assert _login(a, "1001", "2468", clock)
    clock.advance_ms(59000)
    assert not a.idle_expired(clock.ticks_ms())
    a.touch(clock.ticks_ms())
    clock.advance_ms(59000)
    assert not a.idle_expired(clock.ticks_ms())
    clock.advance_ms(1000)
    assert a.idle_expired(clock.ticks_ms())
    assert a.who is None
    assert not a.idle_expired(clock.ticks_ms())


def test_accounts_file_round_trip_and_corruption():
    d = tmpdir("auth")
    try:
        flash = Flash(d)
        assert auth.load_accounts(flash) == {}
        entry = auth.make_account("1001", "2468", "Zhang", iterations=20)
        with flash.open(auth.ACCOUNTS_FILE, "w") as f:
            f.write(json.dumps({"accounts": [entry]}))
        accounts = auth.load_accounts(flash)
        assert list(accounts) == ["1001"] and accounts["1001"]["iter"] == 20
        bad = [
            "not json",
            "[]",
            json.dumps({"accounts": [entry, entry]}),
            json.dumps({"accounts": [dict(entry, hash="abcd")]}),
            json.dumps({"accounts": [dict(entry, iter=0)]}),
            json.dumps({"accounts": [dict(entry, salt="zz")]}),
            json.dumps({"accounts": [{"id": "1001"}]}),
        ]
        for text in bad:
            with flash.open(auth.ACCOUNTS_FILE, "w") as f:
                f.write(text)
            assert raises(auth.AuthError, auth.load_accounts, flash)
    finally:
        rmtree(d)


def test_holds_secret_tells_a_leak_from_a_coincidence():
    # The leak checks above must fail on a leak and pass on digits that merely coincide.
    assert holds_secret("1111", [{"detail": {"pin": "1111"}}])
    assert holds_secret("1111", {"note": "typed 1111"})
    assert holds_secret("1111", {"failures": 1111})
    assert holds_secret("4711", {"hash": "00" * 8 + "34373131"})  # the PIN's bytes, hexed
    assert not holds_secret("1111", [{"t": 1795921111, "detail": {"id": "1001"}}])
    assert not holds_secret("4711", {"salt": "0047110000471100", "hash": "ab" * 16})
    assert holds_secret("0000", {"detail": "pin=0000;"})
    assert not holds_secret("0000", {"detail": "day limit 10000 t, uptime 200005 s"})

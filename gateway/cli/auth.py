# Technician accounts and the CLI's login state.
#
# Accounts file (written by flash.py into the data dir, never by the gateway):
#   {"accounts": [{"id": "1001", "name": "...", "salt": hex, "iter": N, "hash": hex}, ...]}
# PIN hash: h1 = SHA-256(salt || pin); h(i+1) = SHA-256(h(i) || salt || pin); hash = h(iter).
# The PIN itself is never stored, printed or recorded.
#
# Five failed logins in a row (any id) lock login on this port for five minutes, and each
# further lockout without a good login in between doubles it, up to a day: with 4-digit
# PINs that leaves 5 guesses in the first 5 minutes, ~45 on the first day and 5 a day
# after (docs/cli.md). Every failed login and lockout is saved to its own slot (store:
# gateway/store/slots.py) before the answer is written, so a power cut loses none of them;
# the checkpoint (snapshot()/restore()) carries them too. A technician idle for
# idle_logout_s is logged out. The hash is computed a slice at a time (PinCheck.step) so
# that a login never holds up the 10 Hz poll, whatever the board's hashing speed.
import json
from binascii import hexlify, unhexlify

from gateway.cli.port import ACCOUNTS_FILE
from gateway.errors import UserError
from hal import crypto
from hal.compat import const

MAX_FAILURES = const(5)
LOCKOUT_S = const(300)
_LOCKOUT_MAX_S = const(86400)
_LOCKOUT_DOUBLINGS = const(9)  # 300 s << 9 is over a day
AUTH_SLOT = "auth"
DEFAULT_ITERATIONS = const(4096)
_MAX_ITERATIONS = const(1000000)
_SALT_LEN = const(16)
_ID_CHARS = const("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Salt for the dummy check run for an unknown id, so that it costs what a real one does.
_DUMMY_SALT = bytes(_SALT_LEN)


class AuthError(UserError):
    pass


def check_tech_id(tech_id):
    """A technician id: 1..16 letters, digits, '_' or '-'."""
    if not isinstance(tech_id, str) or not 1 <= len(tech_id) <= 16:
        raise AuthError("technician id must be 1 to 16 letters or digits")
    for c in tech_id:
        if c not in _ID_CHARS:
            raise AuthError("technician id must be 1 to 16 letters or digits")
    return tech_id


def check_pin(pin):
    """A PIN: 4..12 digits."""
    if not isinstance(pin, str) or not 4 <= len(pin) <= 12 or not pin.isdigit():
        raise AuthError("PIN must be 4 to 12 digits")
    return pin


class PinCheck:
    """The iterated hash of one PIN, computed in slices."""

    def __init__(self, pin, salt, iterations):
        self._tail = salt + pin.encode()
        self._h = crypto.sha256(self._tail)
        self._left = iterations - 1
        self.tech_id = None
        self.expected = None

    def step(self, n):
        """Do up to n more iterations; True once the hash is complete."""
        tail = self._tail
        h = self._h
        k = min(n, self._left)
        for _ in range(k):
            h = crypto.sha256(h + tail)
        self._h = h
        self._left -= k
        return self._left <= 0

    def finish(self):
        while not self.step(4096):
            pass
        return self._h


def hash_pin(pin, salt, iterations):
    return PinCheck(pin, salt, iterations).finish()


def make_account(tech_id, pin, name="", iterations=DEFAULT_ITERATIONS, salt=None):
    """An accounts-file entry for a technician (used by flash.py)."""
    check_tech_id(tech_id)
    check_pin(pin)
    if salt is None:
        salt = crypto.random_bytes(_SALT_LEN)
    return {
        "id": tech_id,
        "name": name,
        "salt": hexlify(salt).decode(),
        "iter": iterations,
        "hash": hexlify(hash_pin(pin, salt, iterations)).decode(),
    }


def parse_accounts(text):
    """{id: account} from the accounts file's text; AuthError names what is wrong."""
    try:
        obj = json.loads(text)
    except ValueError:
        raise AuthError("accounts file is not valid JSON")
    if not isinstance(obj, dict) or not isinstance(obj.get("accounts"), list):
        raise AuthError('accounts file must be {"accounts": [...]}')
    out = {}
    for i, a in enumerate(obj["accounts"]):
        try:
            tech_id = check_tech_id(a["id"])
            it = a["iter"]
            if isinstance(it, bool) or not isinstance(it, int) or not 1 <= it <= _MAX_ITERATIONS:
                raise AuthError("iter must be 1..%d" % _MAX_ITERATIONS)
            salt = unhexlify(a["salt"])
            digest = unhexlify(a["hash"])
            if len(digest) != 32 or not salt:
                raise AuthError("salt or hash has the wrong length")
            name = a.get("name", "")
            if not isinstance(name, str):
                raise AuthError("name must be a string")
        except (KeyError, TypeError, ValueError, AuthError) as e:
            raise AuthError("accounts file: entry %d is bad (%s)" % (i + 1, e))
        if tech_id in out:
            raise AuthError("accounts file: id %s appears twice" % tech_id)
        out[tech_id] = {"id": tech_id, "name": name, "salt": salt, "iter": it, "hash": digest}
    return out


def load_accounts(flash, name=ACCOUNTS_FILE):
    """The accounts on the flash; {} when there is no accounts file."""
    if not flash.exists(name):
        return {}
    with flash.open(name, "r") as f:
        return parse_accounts(f.read())


class Auth:
    """store: a slots object (load, save) that failures and lockouts are saved to at once;
    None keeps them in RAM (and the checkpoint) only."""

    def __init__(self, accounts, clock, idle_logout_s=600, store=None):
        self.accounts = accounts
        self.clock = clock
        self.idle_logout_s = idle_logout_s
        self.tech_id = None
        self.failures = 0
        self.lockouts = 0  # in a row, without a good login: each doubles the next
        self._lock_until = None  # ticks_ms while locked
        self._last_active = clock.ticks_ms()
        self._store = store
        if store is not None:
            saved = store.load()
            if isinstance(saved, dict):
                self.restore(saved)

    @property
    def who(self):
        return None if self.tech_id is None else "tech:" + self.tech_id

    def name(self):
        a = self.accounts.get(self.tech_id)
        return a["name"] if a else ""

    def locked_s(self, now_ms):
        """Seconds left of a lockout, 0 when login is open."""
        if self._lock_until is None:
            return 0
        left = self.clock.ticks_diff(self._lock_until, now_ms)
        if left <= 0:
            self._lock_until = None
            self.failures = 0
            self._save()  # or the saved lock would come back at the next start
            return 0
        return (left + 999) // 1000

    def begin(self, tech_id, pin, now_ms):
        """Start checking a login; step() the returned PinCheck, then call finish().
        Raises AuthError when login is locked or the input is malformed."""
        left = self.locked_s(now_ms)
        if left:
            raise AuthError("login locked for %d s after %d failures" % (left, MAX_FAILURES))
        account = self.accounts.get(tech_id)
        if account is None:
            # Same cost as a real check, so timing does not tell which ids exist.
            check = PinCheck(pin, _DUMMY_SALT, DEFAULT_ITERATIONS)
        else:
            check = PinCheck(pin, account["salt"], account["iter"])
            check.expected = account["hash"]
        check.tech_id = tech_id
        return check

    def finish(self, check, now_ms):
        """True and logged in when the PIN was right; False and one more failure otherwise."""
        digest = check.finish()
        if check.expected is not None and crypto.compare_digest(digest, check.expected):
            self.tech_id = check.tech_id
            self._last_active = now_ms
            if self.failures or self.lockouts:
                self.failures = self.lockouts = 0
                self._save()
            return True
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.lockouts += 1
            lock_s = min(LOCKOUT_S << min(self.lockouts - 1, _LOCKOUT_DOUBLINGS), _LOCKOUT_MAX_S)
            self._lock_until = self.clock.ticks_add(now_ms, lock_s * 1000)
        self._save()  # before the answer: a cut now must not forget this failure
        return False

    def _save(self):
        if self._store is None:
            return
        try:
            self._store.save(self.snapshot())
        except (OSError, ValueError) as e:  # the flash: the checkpoint still carries it
            print("cli: login state not saved: %s" % e)

    def logout(self):
        self.tech_id = None

    def touch(self, now_ms):
        self._last_active = now_ms

    def idle_expired(self, now_ms):
        """True (once) when the logged-in technician has been idle too long."""
        if self.tech_id is None:
            return False
        if self.clock.ticks_diff(now_ms, self._last_active) < self.idle_logout_s * 1000:
            return False
        self.tech_id = None
        return True

    def snapshot(self):
        left = 0
        if self._lock_until is not None:
            left = max(0, (self.clock.ticks_diff(self._lock_until, self.clock.ticks_ms()) + 999)
                       // 1000)
        return {"failures": self.failures, "lock_left_s": left, "lockouts": self.lockouts}

    def restore(self, state, elapsed_ms=0):
        """Take back a saved state: the stricter of it and what is in force (the slot and
        the checkpoint may differ by the last few seconds before a cut). elapsed_ms: how
        long ago the state was taken while the gateway ran (the CLI unloaded); the time
        the gateway was off does not count towards the lockout."""
        self.failures = max(self.failures, _count(state.get("failures")))
        self.lockouts = max(self.lockouts, _count(state.get("lockouts")))
        left_ms = min(_count(state.get("lock_left_s")), _LOCKOUT_MAX_S) * 1000 - elapsed_ms
        now = self.clock.ticks_ms()
        if left_ms > 0 and (self._lock_until is None
                            or self.clock.ticks_diff(self._lock_until, now) < left_ms):
            self._lock_until = self.clock.ticks_add(now, left_ms)


def _count(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

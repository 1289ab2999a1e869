# The uplink's rare steps, for gateway/center/uplink.py: a connection's HELLO, checking
# its WELCOME against the spec's bounds, naming a failure's kind, and filling the seqs the
# record log could not read with stand-ins (damaged flash). Loaded for those calls only
# and forgotten after (gateway/ondemand.py): where bytecode lives in RAM it then costs no
# heap between them. Pure functions: what they need comes in as arguments, what they
# find goes back.
from binascii import hexlify, unhexlify

from hal import crypto
from protocols import center_link as cl

# A failure's kind from its reason (hal/net.py's and the uplink's words), first match.
_KINDS = (
    ("out of memory", "memory"),
    ("center frame refused", "protocol"),
    ("center error", "protocol"),
    ("resolve ", "dns"),
    ("ECONNREFUSED", "refused"),
    ("EHOSTUNREACH", "unreachable"),
    ("(errno 101)", "unreachable"),  # ENETUNREACH, which MicroPython's errno does not name
    ("ETIMEDOUT", "timeout"),
    ("no answer", "timeout"),
    ("silence", "timeout"),
    ("no ACK", "timeout"),
    ("reads nothing", "timeout"),
    ("closed by peer", "closed"),
    ("ECONNRESET", "closed"),
    ("retention", "local"),
    ("too large", "local"),
    ("log returned", "local"),
)


def hello(keys, device_id, fw, head, oldest, t):
    """(the gateway's Session for a new connection, its HELLO frame)."""
    s = cl.Session(keys, device_id, cl.GATEWAY)
    s.nonce_g = crypto.random_bytes(16)
    frame = s.seal(cl.HELLO, {"nonce": hexlify(s.nonce_g).decode(), "fw": fw, "head": head,
                              "oldest": oldest, "time": t})
    return s, frame


def kind(reason, in_hello):
    """What a failure was, in one word (Uplink.failure). in_hello: it ended a connection
    between our HELLO and a WELCOME: a center that hangs up then, or whose WELCOME does
    not verify, holds another key for us ("auth")."""
    found = "network"
    for words, k in _KINDS:
        if words in reason:
            found = k
            break
    if in_hello and (found == "closed" or "bad_tag" in reason):
        return "auth"
    return found


def check_welcome(msg, head, oldest, acked, gap):
    """(nonce_c, next, center time or None, why next is refused or None, the fields of
    the events to record, the seqs (first, last) retention took before the center had
    them or None) for a WELCOME's plaintext, the log's head and oldest, the breakpoint
    and the gap reported before; FrameError bad_welcome if it is malformed.

    The spec bounds next: at most head + 1, except for a log no center has welcomed yet
    (a new or wiped flash: breakpoint 0), which adopts a larger next so that no seq is
    reused; and below 2^31 always. Anything else would skip the unsent backlog or run
    the seqs out of what a record can carry: the caller refuses it (ERROR bad_next) and
    keeps its breakpoint."""
    nonce = msg.get("nonce")
    nxt = msg.get("next")
    if (not isinstance(nonce, str) or len(nonce) != 32 or not isinstance(nxt, int)
            or isinstance(nxt, bool) or nxt < 1):
        raise cl.FrameError("bad_welcome", "WELCOME needs nonce (32 hex) and next >= 1")
    try:
        nonce_c = unhexlify(nonce)
    except ValueError:
        raise cl.FrameError("bad_welcome", "nonce is not hex")
    t = msg.get("time")
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        t = None
    refused = lost = None
    events = []
    if not cl.seq_ok(nxt):
        refused = "WELCOME next %d is not below 2^31" % nxt
    elif nxt > head + 1 and acked:
        refused = "WELCOME next %d is beyond the log head %d + 1" % (nxt, head)
    elif nxt > head + 1:
        # The center holds seqs up to next from an earlier life of this device: this
        # log's own records below it are not sent (the center holds others there).
        events.append({"code": "seq_adopted", "detail": {
            "next": nxt, "unsent": [oldest, head] if head >= oldest else None}})
    elif nxt < oldest:
        # Retention overtook the breakpoint: those records are gone (spec step 2).
        lost = (nxt, oldest - 1)
        if lost != gap:
            events.append({"code": "upload_gap", "detail": {"first": nxt, "last": oldest - 1}})
    return nonce_c, nxt, t, refused, events, lost


def stand_ins(recs, seq, last, batch, t):
    """(records seq..last, at most batch, with a stand-in for each seq the log skipped;
    how many stand-ins). recs ascend from seq; t: the time for a stand-in after the
    last record read. A frame must be contiguous, and the center should see the loss
    rather than wait for a record that will never come."""
    out = []
    made = 0
    i = 0
    for s in range(seq, last + 1):
        if i < len(recs) and recs[i]["seq"] == s:
            out.append(recs[i])
            t = recs[i].get("t", t)
            i += 1
        else:
            nxt_t = recs[i].get("t", t) if i < len(recs) else t
            out.append({"seq": s, "t": nxt_t, "type": "event", "code": "record_unreadable",
                        "detail": {"reason": "damaged on the gateway's flash"}})
            made += 1
        if len(out) == batch:
            break
    return out, made

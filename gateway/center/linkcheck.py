# The uplink's rare steps, for gateway/center/uplink.py: checking a WELCOME against the
# spec's bounds (once per connection) and filling the seqs the record log could not read
# with stand-ins (damaged flash). Loaded for those calls only and forgotten after
# (gateway/ondemand.py): where bytecode lives in RAM it then costs no heap between them.
# Pure functions: what they need comes in as arguments, what they find goes back.
from binascii import unhexlify

from protocols import center_link as cl


def check_welcome(msg, head, acked):
    """(nonce_c, next, center time or None, why next is refused or None) for a WELCOME's
    plaintext; FrameError bad_welcome if it is malformed.

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
    refused = None
    if not cl.seq_ok(nxt):
        refused = "WELCOME next %d is not below 2^31" % nxt
    elif nxt > head + 1 and acked:
        refused = "WELCOME next %d is beyond the log head %d + 1" % (nxt, head)
    return nonce_c, nxt, t, refused


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

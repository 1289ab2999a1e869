# The scale's arithmetic: totalizer by travel, wrap, gaps, restarts, drop-out, damping,
# linearization, persistence. Synthetic belt: 0.01 g per count x pulse, design 100 000 counts.
from gateway.measure.calibration import lin_correction_pct
from gateway.measure.scale import Scale, u32_diff
from tests.core.synth import U32, Belt, drain, params, run
from tests.core.util import heap_lock


def _load(counts):
    return lambda x: counts


def test_u32_diff_wraps():
    assert u32_diff(5, U32 - 3) == 8
    assert u32_diff(10, 4) == 6
    assert u32_diff(0, 0) == 0


def test_total_is_load_times_travel_to_the_gram():
    # 80 000 counts = 80 kg/m; 25 pulses = 0.25 m per block: 20 kg per block.
    sc = Scale(params())
    b = Belt(load=_load(80000))
    run(sc, b, 1001)  # the first poll only sets the baseline
    drain(sc, b)
    assert sc.total_g == 1000 * 20000
    assert sc.travel_p == 1000 * 25


def test_total_independent_of_speed_profile():
    # The same belt travel at a varying speed gives the same mass: distance, not time.
    sc = Scale(params())
    b = Belt(load=_load(80000))
    run(sc, b, 1)
    for dp in (10, 40, 25, 3, 60):
        b.dp = dp
        run(sc, b, 100)
    drain(sc, b)
    assert sc.total_g == 80 * (10 + 40 + 25 + 3 + 60) * 100 * 10  # kg/m x m -> g
    assert sc.total_g == 80000 * sc.travel_p // 100


def test_counter_wrap_loses_nothing():
    a, b = Scale(params()), Scale(params())
    plain = Belt(load=_load(60000))
    run(a, plain, 401)
    w = Belt(load=_load(60000), pulses=U32 - 3000)
    run(b, w, 401)
    assert w.pulses < 10000  # it did wrap
    drain(a, plain)
    drain(b, w)
    assert a.total_g == b.total_g == 400 * 25 * 60000 // 100


def test_missed_polls_and_skipped_blocks_lose_nothing_on_constant_load():
    full = Scale(params())
    a = Belt(load=_load(70000))
    run(full, a, 501)
    gaps = Scale(params())
    b = Belt(load=_load(70000))
    run(gaps, b, 501, skip=lambda i: i % 7 in (2, 3) or i % 10 == 5)
    drain(full, a)
    drain(gaps, b)
    assert gaps.total_g == full.total_g == 500 * 25 * 70000 // 100


def test_gap_interpolates_between_the_loads_either_side():
    # Load steps from 40 000 to 80 000 counts during a 4-block gap: the missing blocks
    # are taken on the line between the two polls.
    sc = Scale(params())
    b = Belt(load=lambda x: 40000 if x <= 1000 else 80000)
    run(sc, b, 40)  # x = 1000: last poll at 40 000
    for _ in range(3):
        b.block()  # not polled
    run(sc, b, 1)  # 4 blocks later at 80 000
    # weights (n+1)/2n on the new load, (n-1)/2n on the old, n = 4: 5/8 and 3/8.
    expected_gap = 100 * (5 * 80000 + 3 * 40000) // 8  # counts x pulses
    assert sc.cp == expected_gap
    assert sc.n == 4 and sc.dp == 100


def test_collector_restart_adds_no_jump_and_keeps_what_it_counted():
    sc = Scale(params())
    b = Belt(load=_load(50000), pulses=123456789)
    run(sc, b, 101)
    b.restart()
    run(sc, b, 100)
    drain(sc, b)
    # Every block after the restart is counted (the counter restarted at 0 with it).
    assert sc.total_g == 200 * 25 * 50000 // 100
    assert sc.jumps == 0


def test_restart_seen_by_block_seq_going_back_without_flag():
    sc = Scale(params())
    b = Belt(load=_load(50000), pulses=5000000)
    run(sc, b, 101)
    b.restart()
    b.status = 0  # the restart flag was acknowledged before we saw it
    run(sc, b, 100)
    drain(sc, b)
    assert sc.total_g == 200 * 25 * 50000 // 100


def test_implausible_pulse_jump_counts_nothing():
    sc = Scale(params())
    b = Belt(load=_load(50000))
    run(sc, b, 11)
    b.pulses = (b.pulses + 10000000) % U32  # a counter glitch
    run(sc, b, 1)
    assert sc.jumped and sc.jumps == 1
    run(sc, b, 10)
    drain(sc, b)
    assert sc.total_g == 20 * 25 * 50000 // 100


def test_empty_belt_with_heavy_splice_totalizes_nothing():
    # The belt is 50 m; a 0.8 m splice 5 % of design load heavier, a light stretch to
    # balance it. The splice alone is above the 2 % drop-out, the window mean is not.
    def tare(x):
        if 1000 <= x < 1080:
            return 5000
        if 3000 <= x < 3080:
            return -5000
        return 0

    sc = Scale(params())
    b = Belt(tare=tare)
    run(sc, b, 2001)  # 10 revolutions
    drain(sc, b)
    assert sc.total_g == 0


def test_drop_out_keeps_the_edges_of_a_load():
    # A 20 m batch at 30 % of design: all of it counted, the empty belt around it not.
    sc = Scale(params())
    b = Belt(load=lambda x: 30000 if 10000 < x <= 12000 else 0)
    run(sc, b, 1001)
    drain(sc, b)
    assert sc.total_g == 2000 * 30000 // 100


def test_load_below_drop_out_is_not_totalized():
    sc = Scale(params())
    b = Belt(load=_load(1500))  # 1.5 % of design
    run(sc, b, 501)
    drain(sc, b)
    assert sc.total_g == 0
    sc2 = Scale(params(dropout_pct=1.0))
    b2 = Belt(load=_load(1500))
    run(sc2, b2, 501)
    drain(sc2, b2)
    assert sc2.total_g == 500 * 25 * 1500 // 100


def test_never_negative():
    sc = Scale(params())
    b = Belt(load=_load(-30000))  # zero set too high
    last = 0
    for _ in range(300):
        run(sc, b, 1)
        assert sc.total_g >= last
        last = sc.total_g
    assert sc.total_g == 0


def test_total_never_decreases_with_noisy_edges():
    # Alternating +-3000 counts of noise around a batch edge.
    sc = Scale(params())
    def load(x):
        return (60000 if 5000 < x <= 6000 else 0) + (3000 if (x // 25) % 2 else -3000)

    b = Belt(load=load)
    last = 0
    for _ in range(600):
        run(sc, b, 1)
        assert sc.total_g >= last
        last = sc.total_g
    drain(sc, b)
    # The noise sums to zero over the open gate: the batch comes out within one poll's noise.
    assert abs(sc.total_g - 1000 * 60000 // 100) <= 25 * 3000 // 100


def test_damping_touches_the_shown_rate_only():
    totals = []
    for damping in (0.0, 10.0):
        sc = Scale(params(damping_s=damping))
        b = Belt(load=_load(80000))
        run(sc, b, 51)
        if damping:
            # 5 s into a 10 s time constant: about 1 - e**-0.5 of the rate.
            assert 0.3 < sc.rate_shown_tph() / sc.rate_tph() < 0.45
        else:
            assert sc.rate_shown_tph() == sc.rate_tph()
        drain(sc, b)
        totals.append(sc.total_g)
    assert totals[0] == totals[1]


def test_rate_and_speed():
    sc = Scale(params())
    run(sc, Belt(load=_load(80000)), 2)
    assert abs(sc.speed_mps() - 2.5) < 1e-9
    assert abs(sc.load_kgpm() - 80.0) < 1e-9
    assert abs(sc.rate_tph() - 720.0) < 1e-3  # 80 kg/m x 2.5 m/s = 200 kg/s


def test_material_factor_scales_the_total():
    sc = Scale(params(material_factor=0.96))
    b = Belt(load=_load(80000))
    run(sc, b, 1001)
    drain(sc, b)
    assert abs(sc.total_g - 0.96 * 1000 * 20000) <= 1


def test_linearization_points():
    assert lin_correction_pct([], 50) == 0.0
    pts = [[20.0, 1.0], [60.0, -1.0]]
    assert lin_correction_pct(pts, 10) == 1.0
    assert lin_correction_pct(pts, 40) == 0.0
    assert lin_correction_pct(pts, 90) == -1.0
    for load, corr in ((10000, 1.0), (40000, 0.0), (80000, -1.0)):
        sc = Scale(params(linearization=pts))
        b = Belt(load=_load(load))
        run(sc, b, 401)
        drain(sc, b)
        expected = 400 * 25 * load / 100 * (1 + corr / 100)
        assert abs(sc.total_g - expected) <= expected * 1e-7 + 1, (load, sc.total_g, expected)


def test_new_parameters_keep_the_fraction_of_a_gram():
    sc = Scale(params())
    b = Belt(load=_load(77777))
    run(sc, b, 101)
    drain(sc, b)
    s0, held = sc.shift, sc.total_g * (1 << sc.shift) + sc._frac
    sc.apply_params(params(span_kg_per_count=0.00001))  # a finer unit is needed now
    assert sc.shift > s0
    assert sc.total_g * (1 << sc.shift) + sc._frac == held << (sc.shift - s0)


def test_cell_fault_weighs_nothing_and_counts_the_travel():
    sc = Scale(params())
    b = Belt(load=_load(80000))
    run(sc, b, 101)
    b.status = 0x2  # cell 2 fault
    run(sc, b, 50)
    b.status = 0
    run(sc, b, 100)
    drain(sc, b)
    assert sc.unweighed_p == 50 * 25
    assert sc.total_g == 200 * 20000


def test_snapshot_restore_continues_exactly():
    ref = Scale(params())
    b1 = Belt(load=lambda x: 40000 + (x % 3000) * 10)
    run(ref, b1, 700)
    sc = Scale(params())
    b2 = Belt(load=lambda x: 40000 + (x % 3000) * 10)
    run(sc, b2, 300)
    import json

    snap = json.loads(json.dumps(sc.snapshot()))  # what the state file keeps
    again = Scale(params())
    again.restore(snap)
    run(again, b2, 400)
    drain(ref, b1)
    drain(again, b2)
    assert again.total_g == ref.total_g
    assert again.travel_p == ref.travel_p


def test_restore_then_gap_counts_the_travel_of_the_outage():
    sc = Scale(params())
    b = Belt(load=_load(80000))
    run(sc, b, 101)
    snap = sc.snapshot()
    for _ in range(150):
        b.block()  # the gateway was off for 15 s
    again = Scale(params())
    again.restore(snap)
    run(again, b, 50)
    drain(again, b)
    assert again.total_g == 300 * 20000


def test_poll_allocates_nothing():
    lock, unlock = heap_lock()
    sc = Scale(params(linearization=[[20.0, 1.0], [60.0, -1.0]], damping_s=3.0))
    b = Belt(load=_load(80000))
    run(sc, b, 200)
    s = b.block()
    lock()
    try:
        sc.on_sample(s)
    finally:
        unlock()


# --- field events (issue 14)
_H_COUNTERS = 2  # Scale.hold's bit: the counters disagree


def _swap(b, seq, uptime_s, pulses):
    """Another collector answers: its own counters, consistent with each other."""
    b.seq = seq
    b.uptime_ms = uptime_s * 1000
    b.pulses = pulses


def test_used_unit_behind_is_no_restart_and_counts_nothing():
    # Its block_seq is behind ours (it looks like a restart), but it has been up 20 min:
    # our clock saw 100 ms pass, so none of that is travel.
    sc = Scale(params())
    b = Belt(load=_load(50000), pulses=7000000)
    run(sc, b, 200)
    drain(sc, b)
    g = sc.total_g
    _swap(b, 12000, 1200, 2500000)
    run(sc, b, 1)
    assert sc.jumped and sc.hold & _H_COUNTERS and sc.dp == 0
    run(sc, b, 3)
    assert sc.hold & _H_COUNTERS  # counters must agree for a few polls first
    run(sc, b, 100)
    drain(sc, b)
    assert not sc.hold
    # Only the polls after the counters agreed again: 103 blocks of 20 kg... less the
    # discontinuity's own block.
    assert sc.total_g - g == 103 * 25 * 50000 // 100


def test_used_unit_far_ahead_counts_nothing():
    sc = Scale(params())
    b = Belt(load=_load(50000))
    run(sc, b, 200)
    drain(sc, b)
    g = sc.total_g
    _swap(b, b.seq + 50000000, b.uptime_ms // 1000 + 5000000, b.pulses + 100000000)
    run(sc, b, 1)
    assert sc.jumped and sc.total_g == g


def test_restart_counts_only_what_its_uptime_allows():
    sc = Scale(params())
    b = Belt(load=_load(50000), pulses=123456789)
    run(sc, b, 100)
    b.restart()
    run(sc, b, 1)
    assert sc.restarted and not sc.jumped and sc.dp == 25
    run(sc, b, 50)
    # A restart 2 s ago whose block_seq and pulses tell of 5 minutes of travel.
    b.restart()
    b.seq = 3000
    b.pulses = 75000
    b.uptime_ms = 2000
    run(sc, b, 1)
    assert sc.restarted and sc.jumped and sc.dp == 0


def test_identity_holds_the_mass_of_a_restarted_unit_until_its_serial_is_read():
    ref = Scale(params())
    rb = Belt(load=_load(50000))
    run(ref, rb, 301)
    drain(ref, rb)
    for same in (True, False):
        sc = Scale(params())
        sc.verify_identity = 1
        b = Belt(load=_load(50000))
        run(sc, b, 101)
        b.restart()
        run(sc, b, 200)
        assert sc.verify_identity == 2 and sc.hold
        held = sc.total_g
        sc.identity_checked(same)
        drain(sc, b)
        if same:
            assert sc.total_g == ref.total_g  # held, then counted: nothing lost
        else:
            assert sc.total_g == held  # another unit: its mass is never counted
            assert sc.unweighed_p >= 150 * 25


def test_sensor_of_three_times_the_pulses_is_counted_not_a_jump():
    sc = Scale(params())
    b = Belt(load=_load(50000), dp=110)  # 300 pulses/m at 3.7 m/s, 100 configured
    run(sc, b, 101)
    drain(sc, b)
    assert sc.jumps == 0 and sc.total_g == 100 * 110 * 50000 // 100


def test_gap_within_the_bridge_is_estimated_and_beyond_it_is_unweighed_travel():
    for gap, bridged in ((300, True), (700, False)):  # 6 checkpoint periods of 10 s
        sc = Scale(params())
        b = Belt(load=_load(50000))
        run(sc, b, 101)
        for _ in range(gap - 1):
            b.block()  # the link is down
        run(sc, b, 1)
        assert sc.gap[5] == gap and sc.gap[2] == bridged
        run(sc, b, 10)
        drain(sc, b)
        if bridged:
            assert sc.total_g == (110 + gap) * 25 * 50000 // 100
            assert sc.est_g == gap * 25 * 50000 // 100
        else:
            assert sc.total_g == 110 * 25 * 50000 // 100 and sc.est_g == 0
            assert sc.unweighed_p == gap * 25


def test_outage_after_a_restore_is_bounded():
    for down, counted in ((300, True), (3600, False)):
        sc = Scale(params())
        b = Belt(load=_load(80000))
        run(sc, b, 101)
        snap = sc.snapshot()
        for _ in range(down):
            b.block()  # the gateway was off
        again = Scale(params())
        again.restore(snap)
        again.outage_ms = down * 100
        run(again, b, 50)
        drain(again, b)
        if counted:
            # The first poll after the outage is one block too: all of it estimated.
            assert again.total_g == (150 + down) * 20000 and again.est_g == (down + 1) * 20000
        else:
            assert again.total_g == 149 * 20000 and again.unweighed_p == (down + 1) * 25


def test_speed_sensor_loss_is_estimated_from_the_last_speed():
    def tare(x):
        return 3000 if x % 5000 < 500 else 0  # the belt's profile: it moves under the frame

    sc = Scale(params())
    b = Belt(load=_load(50000), tare=tare)
    run(sc, b, 101)
    b.sensor_dead = True
    run(sc, b, 600)  # 60 s without pulses, DI1 on
    assert sc.speed_lost
    b.sensor_dead = False
    run(sc, b, 100)
    drain(sc, b)
    true_g = 800 * 25 * 50300 // 100  # the belt's profile weighs 300 counts on average
    assert abs(sc.total_g - true_g) < true_g // 10000
    assert sc.est_g >= 590 * 25 * 50000 // 100


def test_stalled_belt_is_not_estimated_and_the_estimate_is_bounded():
    sc = Scale(params())
    b = Belt(load=_load(50000))
    run(sc, b, 101)
    dp = b.dp
    b.dp = 0  # DI1 on, nothing moves, the load under the frame stays: belt slip
    run(sc, b, 600)
    assert not sc.speed_lost and sc.est_g == 0
    b.dp = dp
    # The sensor off (status bit 4) for longer than the estimate's bound (10 min).
    sc = Scale(params())
    b = Belt(load=_load(50000))
    run(sc, b, 101)
    b.sensor_dead = True
    b.status = 0x10
    run(sc, b, 6300)
    assert sc.speed_lost and sc.est_g == 6000 * 25 * 50000 // 100
    assert sc.unweighed_n == 300

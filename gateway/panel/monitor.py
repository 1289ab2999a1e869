# --monitor: what the gateway sees, once a second on the console. Plain lines for a log
# or a pipe; with screen=True the LCD panel and the figures are redrawn in place.
from gateway import ondemand
from hal.compat import const

_HOME_CLEAR = const("\x1b[H\x1b[J")


class Monitor:
    name = "monitor"

    def __init__(self, gw, out, screen=False):
        self.gw = gw
        self.out = out
        self.screen = screen

    def line(self):
        st = ondemand.call("gateway.control", "report", self.gw)
        return self._main(st) + self.power_line(st)

    def _main(self, st):
        up = st["uplink"]
        return (
            "rate %7.1f t/h  speed %4.2f m/s  total %10.3f t  %-8s link %-8s center %-7s%s "
            "backlog %d  alarms %s"
            % (
                st["rate_tph"],
                st["speed_mps"],
                st["total_kg"] / 1000,
                st["run_state"],
                st["link"]["state"],
                up["state"],
                _failure(up.get("last_failure"),
                         self.gw.params.get("production.utc_offset_min", 0)),
                up["backlog"],
                ",".join(st["alarms"]) or "-",
            )
        )

    def power_line(self, st):
        pw = st.get("power")
        if not pw:
            return ""
        last = pw.get("last") or {}
        terms = " ".join("%s %s %s kW" % (t["role"], t["state"], t["kw"]) for t in pw["terminals"])
        return "\npower: %s  kWh/t %s (interval), %s (day)  bus round %.1f s" % (
            terms, last.get("kwh_per_t"), pw.get("day_kwh_per_t"), pw["bus"]["round_ms"] / 1000)

    def run(self, now_ms):
        self.out.write((self._screen() if self.screen else self.line()) + "\n")

    def _screen(self):
        # The panel and below it six rows of at most 80 columns (hal/board.py leaves room
        # for them): with the braille panel, the whole fits an 80x24 terminal.
        st = ondemand.call("gateway.control", "report", self.gw)
        panel = self.gw.hw.display
        lines = panel.lines() if panel is not None and hasattr(panel, "lines") else []
        up = st["uplink"]
        lines.append("")
        lines.append("rate %.1f t/h   speed %.2f m/s   belt %s   total %.3f t" % (
            st["rate_tph"], st["speed_mps"], st["run_state"], st["total_kg"] / 1000))
        lines.append(("collector link %s   center %s%s, %d records to send" % (
            st["link"]["state"], up["state"],
            _failure(up.get("last_failure"), self.gw.params.get("production.utc_offset_min", 0)),
            up["backlog"]))[:80])
        lines.append(("alarms: %s" % (", ".join(st["alarms"]) or "none"))[:80])
        power = self.power_line(st)
        if power:
            lines.append(power.strip()[:80])
        lines.append("panel: top line belt RUN/STOP and local time; bottom line collector link")
        lines.append("(OK, DEGRAD = degraded, LOST), A = active alarms, page n/6 (every 3 s)")
        return _HOME_CLEAR + "\n".join(lines)

    def closing(self):
        """The last word when the gateway stops: its totalizer, and what still waited for
        the drop-out gate (docs/measurement.md), which `make run` compares with the
        center's figure and the emulator's true mass."""
        sc = self.gw.measurement.scale
        self.out.write("gateway: total %.3f t at stop, and %.3f t still in the drop-out window\n"
                       % (sc.total_kg() / 1000, sc.pending_g() / 1e6))


def _failure(f, utc_offset_min):
    """" (last failure auth at 14:05:09)" (local time) for the uplink's last failure."""
    if not f:
        return ""
    t = (int(f["t"]) + utc_offset_min * 60) % 86400
    return " (last failure %s at %02d:%02d:%02d)" % (f["kind"], t // 3600, t // 60 % 60, t % 60)

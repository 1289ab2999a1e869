# --monitor: what the gateway sees, once a second on the console. Plain lines for a log
# or a pipe; with screen=True the LCD panel and the figures are redrawn in place.
from hal.compat import const

_HOME_CLEAR = const("\x1b[H\x1b[J")


class Monitor:
    name = "monitor"

    def __init__(self, gw, out, screen=False):
        self.gw = gw
        self.out = out
        self.screen = screen

    def line(self):
        st = self.gw.status()
        return self._main(st) + self.power_line(st)

    def _main(self, st):
        return (
            "rate %7.1f t/h  speed %4.2f m/s  total %10.3f t  %-8s link %-8s center %-7s "
            "backlog %d  alarms %s"
            % (
                st["rate_tph"],
                st["speed_mps"],
                st["total_kg"] / 1000,
                st["run_state"],
                st["link"]["state"],
                st["uplink"]["state"],
                st["uplink"]["backlog"],
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
        text = self.line()
        if self.screen:
            panel = self.gw.hw.display
            lines = panel.lines() if panel is not None and hasattr(panel, "lines") else []
            text = _HOME_CLEAR + "\n".join(lines) + "\n" + text
        self.out.write(text + "\n")

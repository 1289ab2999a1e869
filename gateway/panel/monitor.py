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

    def run(self, now_ms):
        text = self.line()
        if self.screen:
            panel = self.gw.hw.display
            lines = panel.lines() if panel is not None and hasattr(panel, "lines") else []
            text = _HOME_CLEAR + "\n".join(lines) + "\n" + text
        self.out.write(text + "\n")


def _failure(f, utc_offset_min):
    """" (last failure auth at 14:05:09)" (local time) for the uplink's last failure."""
    if not f:
        return ""
    t = (int(f["t"]) + utc_offset_min * 60) % 86400
    return " (last failure %s at %02d:%02d:%02d)" % (f["kind"], t // 3600, t // 60 % 60, t % 60)

# The LCD pages (液晶显示): flow rate, totals, belt speed, running state, link state and
# active alarms, one page every few seconds. Every page has a header (running state,
# local time) and a footer (collector link, number of active alarms, page number). The
# panel is redrawn only when what it shows changes.
#
# values() -> {"rate_tph", "total_t", "day_t", "speed_mps", "running", "load_pct",
#              "battery", "link" ("ok"|"degraded"|"lost"), "center" (connected),
#              "center_failure" (the uplink's last failure: its kind, or None),
#              "center_failure_t" (its unix time), "backlog"}; a key that is missing or
#              None shows as "--".
from hal.compat import const
from hal.display import Display

# The energy page only with power terminals (the app's values have "power").
PAGES = ("rate", "total", "speed", "running", "link", "alarms", "energy")
_COLS = const(16)  # 8x8 font on 128 pixels
_BODY_Y = const((13, 24, 34, 44))
_FOOT_Y = const(56)
_ALARM_LINES = const(3)


def _num(v, fmt):
    return "--" if v is None else fmt % v


class GatewayValues:
    """values() of a gateway.app.Gateway's panel."""

    def __init__(self, gw):
        self.gw = gw

    def __call__(self):
        gw = self.gw
        sc = gw.measurement.scale
        up = gw.uplink.stats()
        run = gw._running_figures()
        c = gw.collector
        out = {
            "rate_tph": sc.rate_shown_tph(),
            "total_t": sc.total_g / 1e6,
            "day_t": gw._production_t()["day_t"],
            "speed_mps": sc.speed_mps(),
            "running": run["running"],
            "load_pct": run["load_pct"],
            "battery": bool(c.sample.di & 2) if c.online else None,
            "link": c.link.state,
            "center": up["connected"],
            "center_failure": up["failure"],
            "center_failure_t": up["failure_t"],
            "backlog": up["backlog"],
        }
        if gw.power:
            out["power"] = gw.power.figures()
        return out


class Lcd:
    name = "lcd"

    def __init__(self, display, clock, values, alarms=None, params=None, page_ms=3000):
        self.display = display
        self.clock = clock
        self._values = values
        self.alarms = alarms
        self.page_ms = page_ms
        self.utc_offset_min = 480
        if params:
            self.apply_params(params)
        self.page = 0
        self._pages = len(PAGES) - 1  # until the values say whether there are terminals
        self._page_elapsed = 0
        self._last_run = None
        self._shown = None  # the lines on the panel now
        self._scratch = None
        self.redraws = 0

    def apply_params(self, params):
        self.utc_offset_min = params.get("production.utc_offset_min", self.utc_offset_min)

    def start(self):
        self._last_run = self.clock.ticks_ms()
        self.run(self._last_run)

    def run(self, now_ms):
        if self._last_run is not None:
            self._page_elapsed += max(0, self.clock.ticks_diff(now_ms, self._last_run))
        self._last_run = now_ms
        if self._page_elapsed >= self.page_ms:
            self._page_elapsed = 0
            self.page = (self.page + 1) % self._pages
        lines = self.lines()
        if lines != self._shown:
            self._draw(lines)
            self._shown = lines

    def lines(self):
        """What the current page shows: [header, body lines..., footer]; a body line
        that starts with "*" is drawn twice the size."""
        v = self._values()
        self._pages = len(PAGES) if v.get("power") else len(PAGES) - 1
        if self.page >= self._pages:
            self.page = 0
        n_alarms = self.alarms.active_count() if self.alarms is not None else 0
        run = v.get("running")
        state = "--" if run is None else ("RUN" if run else "STOP")
        minute = (int(self.clock.time()) // 60 + self.utc_offset_min) % 1440
        header = "%-11s%02d:%02d" % (state, minute // 60, minute % 60)
        footer = "%-6s A%-3d %d/%d" % (
            (v.get("link") or "--")[:6].upper(),
            n_alarms,
            self.page + 1,
            self._pages,
        )
        return [header] + self._body(PAGES[self.page], v, n_alarms) + [footer]

    def _body(self, page, v, n_alarms):
        if page == "rate":
            return ["FLOW RATE t/h", "*" + _num(v.get("rate_tph"), "%.1f"), "",
                    "LOAD " + _num(v.get("load_pct"), "%.0f%%")]
        if page == "total":
            return ["TOTAL t", " " + _num(v.get("total_t"), "%.1f"), "TODAY t",
                    " " + _num(v.get("day_t"), "%.1f")]
        if page == "speed":
            return ["BELT SPEED m/s", "*" + _num(v.get("speed_mps"), "%.2f"), "", ""]
        if page == "running":
            run = v.get("running")
            batt = v.get("battery")
            return [
                "BELT " + ("--" if run is None else ("RUNNING" if run else "STOPPED")),
                "LOAD " + _num(v.get("load_pct"), "%.0f%%"),
                "POWER " + ("--" if batt is None else ("BATTERY" if batt else "MAINS")),
                "",
            ]
        if page == "link":
            center = v.get("center")
            return [
                "COLL " + (v.get("link") or "--"),
                "CENTER " + ("--" if center is None else ("UP" if center else "DOWN")),
                self._failure(v.get("center_failure"), v.get("center_failure_t")),
                " backlog " + _num(v.get("backlog"), "%d"),
            ]
        if page == "energy":
            pw = v["power"]
            return ["DRIVE kW", "*" + _num(pw.get("kw"), "%.1f"),
                    "kWh/t " + _num(pw.get("kwh_per_t"), "%.2f"),
                    "METERS %d/%d" % (pw["up"], pw["n"])]
        out = ["ALARMS %d" % n_alarms]
        if n_alarms == 0:
            out.append(" none")
        else:
            active = self.alarms.active()
            for a in active[:_ALARM_LINES]:
                out.append(a["code"][:_COLS])
            if len(active) > _ALARM_LINES:
                out.append("+%d more" % (len(active) - _ALARM_LINES))
        while len(out) < 4:
            out.append("")
        return out

    def _failure(self, kind, t):
        """The center link's last failure: " auth 14:05" (local time); "" if none."""
        if not kind or t is None:
            return ""
        minute = (int(t) // 60 + self.utc_offset_min) % 1440
        return " %s %02d:%02d" % (kind[:9], minute // 60, minute % 60)

    def _draw(self, lines):
        d = self.display
        d.fill(0)
        d.text(lines[0][:_COLS], 0, 0, 1)
        d.hline(0, 10, d.width, 1)
        for y, line in zip(_BODY_Y, lines[1:-1]):
            if line.startswith("*"):
                self._big(line[1 : 1 + _COLS // 2], 0, y)
            else:
                d.text(line[:_COLS], 0, y, 1)
        d.hline(0, _FOOT_Y - 3, d.width, 1)
        d.text(lines[-1][:_COLS], 0, _FOOT_Y, 1)
        d.show()
        self.redraws += 1

    def _big(self, s, x, y):
        # Twice-size text: each character drawn into an 8x8 scratch and scaled up.
        if self._scratch is None:
            self._scratch = Display(8, 8)
        sc = self._scratch
        d = self.display
        for ch in s:
            sc.fill(0)
            sc.text(ch, 0, 0, 1)
            for py in range(8):
                for px in range(8):
                    if sc.pixel(px, py):
                        d.fill_rect(x + 2 * px, y + 2 * py, 2, 2, 1)
            x += 16

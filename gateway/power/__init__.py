# The power side: the terminals' readings into records, energy per tonne, power alarms
# (docs/power.md); the output-against-power cross-check (docs/crosscheck.md).

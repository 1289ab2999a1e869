# Power-efficiency terminals and the output-against-power cross-check (docs/crosscheck.md).

# Self-diagnosis: alarms, the checks, their report, device identity (docs/alarms.md).

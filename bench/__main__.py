# make bench: every bench/<area>.py with a rows() function contributes rows to one table,
# printed and written to bench/results.json. Run some areas: make bench ARGS="store uplink"
# (their rows in results.json are replaced, the other areas' rows kept).
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def areas(only):
    names = sorted(f[:-3] for f in os.listdir(HERE)
                   if f.endswith(".py") and not f.startswith("_") and f != "util.py")
    return [n for n in names if not only or n in only]


def main(argv):
    import importlib

    results = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": []}
    failed = []
    for name in areas(argv):
        t0 = time.time()
        try:
            for row in importlib.import_module("bench." + name).rows():
                row.setdefault("area", name)
                results["rows"].append(row)
                print("%-10s %-58s %14s %-8s %s" % (
                    row["area"], row["name"], _fmt(row["value"]), row.get("unit", ""),
                    row.get("note", "")), flush=True)
        except Exception as e:  # one area failing must not hide the others' figures
            failed.append(name)
            results["rows"].append({"area": name, "name": "FAILED", "value": 0, "note": repr(e)})
            print("%-10s FAILED: %r" % (name, e), flush=True)
        print("%-10s (%.1f s)" % (name, time.time() - t0), flush=True)
    path = os.path.join(HERE, "results.json")
    if argv:
        results["rows"] = _kept_rows(path, set(areas(argv))) + results["rows"]
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)
    print("wrote", os.path.relpath(path))
    if failed:
        print("bench areas that failed: %s" % ", ".join(failed))
        return 1
    return 0


def _kept_rows(path, replaced):
    """The rows of the areas not run now, from the last results (none if unreadable)."""
    try:
        with open(path) as f:
            rows = json.load(f)["rows"]
    except (OSError, ValueError, KeyError):
        return []
    return [r for r in rows if r.get("area") not in replaced]


def _fmt(v):
    if isinstance(v, float):
        return "%.4g" % v
    return str(v)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

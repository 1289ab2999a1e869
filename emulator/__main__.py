# python -m emulator            the emulated collector (RTU over TCP, optionally a pty)
#                                and center station on loopback, until Ctrl-C
# python -m emulator demo       the same plus a gateway (what `make run` does)
# python -m emulator collector ...  /  python -m emulator center ...   one of them alone
import argparse
import sys

from emulator import demo


def main(argv):
    if argv and argv[0] == "collector":
        from emulator import collector

        return collector.main(argv[1:])
    if argv and argv[0] == "center":
        from emulator import center

        return center.main(argv[1:])
    if argv and argv[0] == "demo":
        return demo.main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    demo.add_site_args(p)
    args = p.parse_args(argv)
    site = demo.Site(args)
    try:
        site.start()
    except demo.SiteError as e:
        print("emulator: %s" % e, file=sys.stderr)
        return 2
    print("collector: %s\ncenter: %s:%d (keys in %s)" % (
        site.collector_url, site.center.host, site.center.port, site.keys_dir), flush=True)
    try:
        site.wait(args.seconds)
    except KeyboardInterrupt:
        pass
    site.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# The center station: uplink, command intake and queue (docs/uplink.md).

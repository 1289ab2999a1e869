# protocols: wire formats. Codecs build, parse and raise; they never retry or reconnect.

# Records and state on flash: the record log, its recovery and codec, the two-copy slots
# (docs/storage.md).

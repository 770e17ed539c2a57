"""Workarounds for Faust, aiokafka and brokers, one per module, each named after what it does:
records Faust skips after taking on a partition, short end offsets, metadata retries."""

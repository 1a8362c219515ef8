"""The runtime core a camera app embeds: :class:`~calibnet.runtime.core.runtime.Runtime`, the graph contract,
the table of targets, pre- and post-processing, depth conversion, readers and the output comparator. No torch."""

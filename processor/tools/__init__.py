"""What the commands compute off-line: report figures (funnelstats, breakdownstats) and
the simulator (simgen, simshapes). Imports config, kafka and the core; never the worker."""

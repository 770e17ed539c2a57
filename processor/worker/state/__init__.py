"""The worker's state: journeys entries and their store, batched changelog writes,
per-partition stage counts, and the source marks of re-keyed touchpoints."""

"""Shadow reads, Scientist-style: legacy serves, a sampled share of the reads also runs against the new read
model in the background and is compared through the mapping; differences are recorded and lag told apart.

Pieces: `sampling` (who is in), `lab` (the bounded background runner), `judge` and `compare` (equal, lag or
mismatch), `freshness` (is the new side behind for a key), `mismatches` (the recorded differences),
`metrics` and `flusher` (counts to /metrics and to the migration stream), `reads` (`ShadowReads`),
`modes` (`migrator reads`), `aa` (the legacy-against-legacy run).
"""

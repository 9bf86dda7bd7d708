"""Read and write switchover: the legacy app's live routes, the event-sourced writes and the reverse projection."""

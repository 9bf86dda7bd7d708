"""The legacy CRUD user service: the "before" system, mutated in place."""
